"""eliquare teacher fit-head: an MLM head fitted on a frozen teacher that has none."""

from __future__ import annotations

import json

import pytest
import torch

from eliquare.cli import main


def test_fit_head_on_a_headless_teacher(tiny_bert_no_head, corpus_file, tmp_path, capsys):
    from transformers import AutoModel, AutoModelForMaskedLM

    from eliquare.teachers import load_teacher

    assert not load_teacher(str(tiny_bert_no_head)).has_mlm_head
    out = tmp_path / "with-head"
    rc = main(
        [
            "teacher",
            "fit-head",
            "--teacher",
            str(tiny_bert_no_head),
            "--corpus",
            str(corpus_file),
            "--out",
            str(out),
            "--max-steps",
            "30",
            "--eval-steps",
            "10",
            "--batch-size",
            "16",
            "--learning-rate",
            "1e-2",
            "--seed",
            "3",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert printed.count("held-out masked-token accuracy") >= 4  # steps 0, 10, 20, 30

    report = json.loads((out / "head_report.json").read_text())
    assert [h["step"] for h in report["history"]] == [0, 10, 20, 30]
    assert report["teacher_had_mlm_head"] is False and report["heldout_sentences"] > 0
    before, after = report["heldout_masked_token_accuracy_before"], report["heldout_masked_token_accuracy"]
    assert after > before and after > 0.05  # a random head knows nothing; a fitted one learns the frequent words
    assert report["history"][-1]["heldout_loss"] < report["history"][0]["heldout_loss"]

    # the output loads as a masked-LM model with its head present, and counts as one for distillation
    model, info = AutoModelForMaskedLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert load_teacher(str(out)).has_mlm_head
    # the encoder was frozen: its weights are the teacher's, bit for bit
    teacher = AutoModel.from_pretrained(tiny_bert_no_head)
    for name, value in teacher.state_dict().items():
        if not name.startswith("pooler."):
            assert torch.equal(model.bert.state_dict()[name], value), name


def test_fit_head_refuses_a_non_empty_out(tiny_bert_no_head, corpus_file, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "x").write_text("x")
    rc = main(
        [
            "teacher",
            "fit-head",
            "--teacher",
            str(tiny_bert_no_head),
            "--corpus",
            str(corpus_file),
            "--out",
            str(out),
            "--max-steps",
            "1",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "not empty" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flag,value", [("--max-steps", "0"), ("--mlm-probability", "1.5")])
def test_fit_head_rejects_bad_options(flag, value, tmp_path, capsys):
    assert main(["teacher", "fit-head", "--corpus", "c.txt", "--out", str(tmp_path / "o"), flag, value]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
