"""`eliquare distill --vocab-reduce pre|post`: VocabReduce before or after distillation."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForMaskedLM, AutoTokenizer

from eliquare.config import DistillConfig
from eliquare.distill import distill


def _config(tiny_bert, corpus_file, tmp_path, when: str, out: str = "student") -> DistillConfig:
    return DistillConfig(
        teacher=str(tiny_bert),
        corpus=[str(corpus_file)],
        out=str(tmp_path / out),
        vocab_reduce=when,
        vocab_min_fraction=0.05,
        student_layers=2,
        batch_size=16,
        gradient_accumulation=1,
        max_steps=3,
        eval_steps=2,
        logging_steps=5,
        cache_dir=str(tmp_path / "cache"),
    )


def _check_reduced_student(when: str, out, tiny_bert, err: str) -> None:
    """A student distilled with --vocab-reduce WHEN: its record, tokenizer and weights agree on the kept ids."""
    record = json.loads((out / "distillation.json").read_text())
    report = record["vocab_reduce"]
    # 5% of the sentences re-tokenises most of this corpus: distill says so, naming its own option
    assert report["identical_tokenisation"] < 0.9
    assert "--vocab-min-count 2 or 1" in err
    kept = report["vocab_size"]["after"]
    original = len(AutoTokenizer.from_pretrained(tiny_bert))
    assert report["vocab_size"]["before"] == original > kept
    tokenizer, student = AutoTokenizer.from_pretrained(out), AutoModelForMaskedLM.from_pretrained(out)
    assert len(tokenizer) == student.config.vocab_size == student.get_input_embeddings().weight.shape[0] == kept
    assert (out / "vocab.txt").read_text().splitlines() == tokenizer.convert_ids_to_tokens(list(range(kept)))
    assert record["student_parameters"] == sum(p.numel() for p in student.parameters())
    # the run's own calls (at --max-length) leave no truncation or padding in the files a user loads
    spec = json.loads((out / "tokenizer.json").read_text())
    assert spec["truncation"] is None and spec["padding"] is None
    assert "max_length" not in json.loads((out / "tokenizer_config.json").read_text())
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


def test_distillation_with_vocab_reduce_pre(tiny_bert, corpus_file, tmp_path, capsys):
    out = distill(_config(tiny_bert, corpus_file, tmp_path, "pre"))
    _check_reduced_student("pre", out, tiny_bert, capsys.readouterr().err)


def test_distillation_with_vocab_reduce_post_and_from_its_full_vocabulary_twin(
    tiny_bert, corpus_file, tmp_path, capsys
):
    """--vocab-reduce post; and the same student made by reducing a finished full-vocabulary student of the same
    settings (what an experiment with both does instead of distilling the same network twice)."""
    from safetensors.torch import load_file

    from eliquare.distill.post_reduce import reduce_distilled
    from eliquare.errors import EliquareError

    post = distill(_config(tiny_bert, corpus_file, tmp_path, "post", "post"))
    _check_reduced_student("post", post, tiny_bert, capsys.readouterr().err)
    full = distill(_config(tiny_bert, corpus_file, tmp_path, "none", "full"))
    assert json.loads((full / "tokenizer.json").read_text())["truncation"] is None  # the teacher's, uncut
    with pytest.raises(EliquareError, match="no finished full-vocabulary"):
        reduce_distilled(post, _config(tiny_bert, corpus_file, tmp_path, "post", "again"))  # reduced already
    derived = reduce_distilled(full, _config(tiny_bert, corpus_file, tmp_path, "post", "derived"), log=lambda m: None)
    a, b = load_file(post / "model.safetensors"), load_file(derived / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        assert (post / name).is_file() == (derived / name).is_file()
        if (post / name).is_file():
            assert (post / name).read_text() == (derived / name).read_text(), name
    assert sorted(p.name for p in post.iterdir()) == sorted(p.name for p in derived.iterdir())
    direct, made = (json.loads((d / "distillation.json").read_text()) for d in (post, derived))
    for key in ("vocab_reduce", "student_parameters", "validation", "best_validation_loss", "config", "health"):
        expected = {**direct[key], "out": made["config"]["out"]} if key == "config" else direct[key]
        assert made[key] == expected, key
    assert made["derived_from"]["student"] == str(full) and "derived_from" not in direct
    assert (
        AutoModelForMaskedLM.from_pretrained(derived).config.vocab_size == direct["vocab_reduce"]["vocab_size"]["after"]
    )
