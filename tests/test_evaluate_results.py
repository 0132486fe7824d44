"""The results row: one schema for a suite's jobs and a finetune metrics.json; `read_results` of each."""

from __future__ import annotations

import json

import pytest

from eliquare.errors import EliquareError
from eliquare.evaluate.results import FIELDS, finetune_row, job_row, read_results, write_results

SUMMARY = {
    "kind": "finetune",
    "model": "runs/student/",
    "task": "ner",
    "metric": "f1",
    "score": 0.5,
    "std": 0.1,
    "seeds": [1, 2],
    "scores": [0.4, 0.6],
    "data": {"train_examples": 30, "test_examples": 7},
    "parameters": 1000,
    "encoder_parameters": 900,
    "tokens_per_second": 12.5,
}


def test_rows_hold_every_field_in_order(tmp_path):
    dataset = {"name": "sw-ner", "language": "sw", "task": "ner", "train": "t.txt"}
    ok = job_row("student", "runs/student", dataset, tmp_path, SUMMARY, "ok")
    pending = job_row("student", "runs/student", dataset, tmp_path, None, "pending")
    assert tuple(ok) == FIELDS == tuple(pending)
    assert (ok["label"], ok["score"], ok["test_examples"], pending["score"]) == ("ner", 0.5, 7, "")
    row = finetune_row(SUMMARY, "student", "sw-ner", tmp_path)
    assert tuple(row) == FIELDS and row["label"] == "NER" and row["model_spec"] == "runs/student/"
    write_results(tmp_path / "out", [ok, pending], "suite.yaml")
    assert read_results(tmp_path / "out").rows == [ok, pending]
    header = (tmp_path / "out" / "results.csv").read_text().splitlines()[0]
    assert header == ",".join(FIELDS)


def test_a_directory_of_finetune_runs(tmp_path):
    for model in ("a", "b"):
        run = tmp_path / model / "sw-ner"
        (run / "seed-1").mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps({**SUMMARY, "model": model}))
        (run / "seed-1" / "metrics.json").write_text(json.dumps({"seed": 1, "score": 0.4}))  # one seed: skipped
    res = read_results(tmp_path)
    assert res.kind == "finetune" and [(r["model"], r["dataset"]) for r in res.rows] == [
        ("a", "sw-ner"),
        ("b", "sw-ner"),
    ]
    one = read_results(tmp_path / "a" / "sw-ner" / "metrics.json")
    assert [(r["model"], r["dataset"]) for r in one.rows] == [("a", "sw-ner")]


def test_read_results_errors_are_one_line(tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text("{not json", encoding="utf-8")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"kind": "something"}), encoding="utf-8")
    cases = [
        (tmp_path / "missing", "does not exist"),
        (bad, "is not a readable JSON file"),
        (other, "is neither a metrics.json"),
        (tmp_path / "empty", "holds no results"),
    ]
    (tmp_path / "empty").mkdir()
    for path, message in cases:
        with pytest.raises(EliquareError, match=message) as e:
            read_results(path)
        assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_a_results_file_or_directory_holding_something_else_is_named(tmp_path):
    """Not "no results.json" or "no metrics.json" when the file is there but holds something else."""
    seeds = tmp_path / "seeds-only" / "seed-1"
    seeds.mkdir(parents=True)
    (seeds / "metrics.json").write_text(json.dumps({"seed": 1, "score": 0.5, "test": {}}), encoding="utf-8")
    with pytest.raises(EliquareError, match="holds 1 metrics.json file.*but none is the summary") as e:
        read_results(tmp_path / "seeds-only")
    assert "no metrics.json" not in str(e.value)
    for rows in (5, [1, 2], "x"):
        (tmp_path / "results.json").write_text(json.dumps({"rows": rows}), encoding="utf-8")
        with pytest.raises(EliquareError, match="'rows' is not a list of result rows"):
            read_results(tmp_path)
