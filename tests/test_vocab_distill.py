"""`eliquare distill --vocab-reduce pre|post`: VocabReduce before or after distillation."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForMaskedLM, AutoTokenizer

from eliquare.config import DistillConfig
from eliquare.distill import distill


@pytest.mark.parametrize("when", ["pre", "post"])
def test_distillation_with_vocab_reduce(when, tiny_bert, corpus_file, tmp_path, capsys):
    out = distill(
        DistillConfig(
            teacher=str(tiny_bert),
            corpus=[str(corpus_file)],
            out=str(tmp_path / "student"),
            vocab_reduce=when,
            vocab_min_fraction=0.05,
            student_layers=2,
            batch_size=16,
            gradient_accumulation=1,
            max_steps=3,
            logging_steps=5,
            cache_dir=str(tmp_path / "cache"),
        )
    )
    record = json.loads((out / "distillation.json").read_text())
    report = record["vocab_reduce"]
    # 5% of the sentences re-tokenises most of this corpus: distill says so, naming its own option
    assert report["identical_tokenisation"] < 0.9
    assert "--vocab-min-count 2 or 1" in capsys.readouterr().err
    kept = report["vocab_size"]["after"]
    original = len(AutoTokenizer.from_pretrained(tiny_bert))
    assert report["vocab_size"]["before"] == original > kept
    tokenizer, student = AutoTokenizer.from_pretrained(out), AutoModelForMaskedLM.from_pretrained(out)
    assert len(tokenizer) == student.config.vocab_size == student.get_input_embeddings().weight.shape[0] == kept
    assert (out / "vocab.txt").read_text().splitlines() == tokenizer.convert_ids_to_tokens(list(range(kept)))
    assert record["student_parameters"] == sum(p.numel() for p in student.parameters())
    if when == "pre":  # the teacher was reduced too: teacher and student share the smaller vocabulary
        assert record["teacher_parameters"] == report["parameters"]["after"]
        assert (
            report["model_class"] == "BertForMaskedLM" and report["parameters"]["before"] > record["teacher_parameters"]
        )
    else:  # the teacher kept its vocabulary; the student was cut after training
        assert record["teacher_parameters"] == sum(
            p.numel() for p in AutoModelForMaskedLM.from_pretrained(tiny_bert).parameters()
        )
        assert record["student_parameters"] == report["parameters"]["after"]
