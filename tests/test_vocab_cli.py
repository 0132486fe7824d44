"""`eliquare vocab reduce` end to end on a tiny model and a corpus file."""

from __future__ import annotations

import json

import pytest

from eliquare.cli import main


def test_vocab_reduce_command(tiny_bert, corpus_file, tmp_path, capsys):
    out = tmp_path / "reduced"
    args = [
        "vocab",
        "reduce",
        "--model",
        str(tiny_bert),
        "--corpus",
        str(corpus_file),
        "--out",
        str(out),
        "--min-fraction",
        "0.05",
    ]
    assert main(args) == 0
    report = json.loads((out / "vocab_report.json").read_text())
    assert report["model"] == str(tiny_bert)
    assert report["vocab_size"]["after"] < report["vocab_size"]["before"]
    assert report["parameters"]["after"] < report["parameters"]["before"]
    printed = capsys.readouterr()
    assert "parameters" in printed.out
    # 20 of 400 sentences re-tokenises most of them: a notice, with this command's own flag
    assert report["identical_tokenisation"] < 0.9 and "--min-count 2 or 1" in printed.err

    from transformers import AutoModelForMaskedLM, AutoTokenizer

    assert len(AutoTokenizer.from_pretrained(out)) == report["vocab_size"]["after"]
    assert AutoModelForMaskedLM.from_pretrained(out).config.vocab_size == report["vocab_size"]["after"]

    # an existing, non-empty --out is refused (exit 2, one line), and replaced with --overwrite
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite", "--max-size", "90"]) == 0
    assert json.loads((out / "vocab_report.json").read_text())["vocab_size"]["after"] <= 90


def test_missing_corpus_is_reported_before_loading(tiny_bert, tmp_path, capsys):
    assert (
        main(
            [
                "vocab",
                "reduce",
                "--model",
                str(tiny_bert),
                "--corpus",
                str(tmp_path / "nope.txt"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "nope.txt" in capsys.readouterr().err


def _snapshot(directory):
    return {str(f.relative_to(directory)): f.read_bytes() for f in sorted(directory.rglob("*")) if f.is_file()}


def test_overwrite_builds_beside_and_swaps(tiny_bert, corpus_file, tmp_path, capsys, monkeypatch):
    """Guards against: --overwrite deleted OUT first, so a failure (or a kill) while saving lost the old reduced
    model."""
    from eliquare.vocab.reduce import ReductionResult

    out = tmp_path / "reduced"
    args = [
        "vocab",
        "reduce",
        "--model",
        str(tiny_bert),
        "--corpus",
        str(corpus_file),
        "--out",
        str(out),
        "--min-fraction",
        "0.05",
    ]
    assert main(args) == 0
    (out / "stale.txt").write_text("of the old run")
    before = _snapshot(out)
    save = ReductionResult.save

    def failing(self, directory):
        save(self, directory)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ReductionResult, "save", failing)
    with pytest.raises(OSError):
        main(args + ["--overwrite", "--max-size", "90"])
    assert _snapshot(out) == before and not (tmp_path / "reduced.partial").exists()
    monkeypatch.setattr(ReductionResult, "save", save)
    assert main(args + ["--overwrite", "--max-size", "90"]) == 0
    assert not (out / "stale.txt").exists() and not (tmp_path / "reduced.partial").exists()
    assert json.loads((out / "vocab_report.json").read_text())["vocab_size"]["after"] <= 90
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".reduced", "reduced"))) == ["reduced"]

    (tmp_path / "reduced.partial").mkdir()  # someone's own directory where the new one would be built
    (tmp_path / "reduced.partial" / "mine.txt").write_text("precious")
    from oneline import assert_one_error

    capsys.readouterr()
    assert_one_error(main(args + ["--overwrite"]), capsys.readouterr().err, "reduced.partial is in the way")
