"""`eliquare evaluate`: a suite of jobs into one results table; done jobs are skipped; bad suites fail early."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from eliquare.cli import main
from eliquare.config import EvaluateConfig
from eliquare.errors import EliquareError
from eliquare.evaluate.job import Job
from eliquare.evaluate.suite import evaluate, load_suite, select_jobs

SUITE = """
vars:
  data: /nonexistent
defaults:
  max_steps: 1
  warmup_steps: 0
  seeds: [7]
  progress: false
models:
  - name: tiny
    model: ${model}
datasets:
  - name: xx-pos
    language: xx
    task: pos
    label: UPOS
    train: ${data}/pos.conllu
  - name: xx-topic
    language: xx
    task: classify
    label: topic
    train: ${data}/topic.tsv
    label_column: "0"
    text_column: ["1"]
    header: false
"""


def _data(tmp: Path) -> Path:
    d = tmp / "data"
    d.mkdir()
    rows = []
    for i in range(20):
        rows += [f"1\tmtoto{i}\tmtoto\tNOUN\t_\t_\t0\troot\t_\t_", "2\tanasoma\tsoma\tVERB\t_\t_\t1\tdep\t_\t_", ""]
    (d / "pos.conllu").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (d / "topic.tsv").write_text(
        "".join(f"{'a' if i % 2 else 'b'}\tmama {'sokoni' if i % 2 else 'leo'}\n" for i in range(20)), encoding="utf-8"
    )
    return d


def test_suite_runs_skips_and_tables(tiny_bert, tmp_path, capsys):
    data = _data(tmp_path)
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    out = tmp_path / "out"
    args = ["evaluate", "--suite", str(suite), "--out", str(out), "--var", f"data={data}", f"model={tiny_bert}"]
    assert main(args) == 0
    with (out / "results.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["model"], r["dataset"], r["task"], r["status"]) for r in rows] == [
        ("tiny", "xx-pos", "pos", "ok"),
        ("tiny", "xx-topic", "classify", "ok"),
    ]
    assert rows[0]["metric"] == "accuracy" and rows[1]["metric"] == "macro_f1" and rows[0]["seeds"] == "7"
    js = json.loads((out / "results.json").read_text())
    assert js["rows"][0]["scores"] and 0.0 <= js["rows"][0]["score"] <= 1.0
    assert (out / "runs" / "tiny" / "xx-pos" / "metrics.json").is_file()
    assert not (out / "runs" / "tiny" / "xx-pos" / "model").exists()  # suites keep no models by default
    capsys.readouterr()
    stamp = (out / "runs" / "tiny" / "xx-pos" / "metrics.json").stat().st_mtime_ns
    assert main(args) == 0  # everything done: skipped
    err = capsys.readouterr().err
    assert err.count("done already, skipped") == 2
    assert (out / "runs" / "tiny" / "xx-pos" / "metrics.json").stat().st_mtime_ns == stamp


def test_failed_job_is_recorded_and_others_run(tiny_bert, tmp_path):
    data = _data(tmp_path)
    (data / "topic.tsv").write_text("a\tmama\nb\n", encoding="utf-8")  # second row lacks its text
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    cfg = EvaluateConfig(
        suite=str(suite), out=str(tmp_path / "out"), var=[f"data={data}", f"model={tiny_bert}"], only=["xx-topic"]
    )
    with pytest.raises(EliquareError, match="1 of 1 jobs failed"):
        evaluate(cfg)
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert rows[0]["status"] == "failed" and "topic.tsv, line 2" in rows[0]["error"]
    assert (tmp_path / "out" / "runs" / "tiny" / "xx-topic" / "error.txt").is_file()


def test_suite_errors_and_overrides(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    with pytest.raises(EliquareError, match=r"unknown variable \$\{model\}"):
        load_suite(suite)
    jobs = load_suite(suite, var=["model=m", "data=/d"], models=["a=dir/a", "hub/b"])
    assert [(j.model, j.model_spec, j.dataset["name"]) for j in jobs] == [
        ("a", "dir/a", "xx-pos"),
        ("a", "dir/a", "xx-topic"),
        ("b", "hub/b", "xx-pos"),
        ("b", "hub/b", "xx-topic"),
    ]
    assert jobs[1].dataset["train"] == "/d/topic.tsv" and jobs[1].options["label_column"] == "0"
    assert jobs[0].options["seeds"] == [7]
    suite.write_text(SUITE.replace("  max_steps: 1", "  max_stepz: 1"), encoding="utf-8")
    with pytest.raises(EliquareError, match="unknown option.*max_stepz"):
        load_suite(suite, var=["model=m"])
    with pytest.raises(EliquareError, match="is not NAME=VALUE"):
        load_suite(suite, var=["model"])


def test_bad_job_options_fail_before_any_job_runs_and_name_the_job(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.replace("  warmup_steps: 0", "  warmup_steps: -1"), encoding="utf-8")
    cfg = EvaluateConfig(suite=str(suite), out=str(tmp_path / "out"), var=["model=m", "data=/d"])
    with pytest.raises(EliquareError, match=r"job tiny/xx-pos: warmup_steps must be >= 0"):
        evaluate(cfg)
    assert not (tmp_path / "out").exists()


def test_shipped_suite_lists_twelve_tasks():
    suite = Path(__file__).resolve().parents[1] / "suites" / "shared-data.yaml"
    jobs = load_suite(suite, var=["data=/data"])
    assert len(jobs) == 12
    assert {j.dataset["language"] for j in jobs} == {"fr", "nl", "he", "hi", "sl", "sw"}
    by = {j.dataset["name"]: j for j in jobs}
    assert by["sl-ner"].dataset["task"] == "ner" and by["sl-ner"].dataset["train"].endswith("sl_ssj-ud-dev.conllu")
    assert "test" not in by["nl-ner"].dataset and "test" not in by["hi-pos"].dataset  # one file: cut 80/10/10
    assert by["sw-news"].options["text_column"] == ["headline", "text"]
    assert by["sl-ner"].options["documents"] == "annotated"  # its NER layer covers some documents only


@pytest.mark.realdata
def test_shipped_suite_reads_the_real_data(shared_data):
    from eliquare.tasks.readers import load_task_data

    suite = Path(__file__).resolve().parents[1] / "suites" / "shared-data.yaml"
    for job in load_suite(suite, var=[f"data={shared_data}"]):
        d, o = job.dataset, job.options
        data = load_task_data(
            d["task"],
            d["train"],
            d.get("dev"),
            d.get("test"),
            label_column=o.get("label_column"),
            text_columns=o.get("text_column"),
            header=o.get("header"),
            documents=o.get("documents", "all"),
        )
        assert len(data.train) > 100 and len(data.test) > 50 and len(data.labels) >= 2, d["name"]
        assert not data.notices, (d["name"], data.notices)  # no partly annotated file read whole


def test_changed_settings_rerun_dry_run_writes_nothing_only_keeps_rows(tiny_bert, tmp_path, capsys):
    data = _data(tmp_path)
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    out = tmp_path / "out"
    args = ["evaluate", "--suite", str(suite), "--out", str(out), "--var", f"data={data}", f"model={tiny_bert}"]
    assert main(args) == 0
    table = (out / "results.json").read_text()
    pos = out / "runs" / "tiny" / "xx-pos" / "metrics.json"
    stamp = pos.stat().st_mtime_ns
    capsys.readouterr()
    # a changed setting: every job is to run again; a dry run says so and writes nothing
    assert main(args + ["--max-steps", "2", "--dry-run"]) == 0
    assert capsys.readouterr().err.count("to run (settings changed since it ran)") == 2
    assert (out / "results.json").read_text() == table and pos.stat().st_mtime_ns == stamp
    # --only runs the one job again with the new setting and keeps the other job's row
    assert main(args + ["--max-steps", "2", "--only", "xx-pos"]) == 0
    assert "running into" in capsys.readouterr().err and pos.stat().st_mtime_ns != stamp
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["dataset"] for r in rows] == ["xx-pos", "xx-topic"] and all(r["status"] == "ok" for r in rows)
    assert json.loads(pos.read_text())["config"]["max_steps"] == 2
    # a changed data file reruns its job too, and only its job
    assert main(args + ["--max-steps", "2"]) == 0
    with (data / "topic.tsv").open("a", encoding="utf-8") as f:
        f.write("a\tmama sokoni\n")
    capsys.readouterr()
    assert main(args + ["--max-steps", "2", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "xx-pos (pos): done already" in err and "xx-topic (classify): to run (settings changed" in err


def test_more_seeds_run_only_the_new_ones(tiny_bert, tmp_path, capsys):
    """The same settings with another list of seeds: the seeds that ran are kept (their files moved to the layout of
    the new list), only the new ones train; any other change reruns every seed."""
    data = _data(tmp_path)
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    out = tmp_path / "out"
    args = [
        "evaluate",
        "--suite",
        str(suite),
        "--out",
        str(out),
        "--var",
        f"data={data}",
        f"model={tiny_bert}",
        "--only",
        "xx-pos",
    ]
    run = out / "runs" / "tiny" / "xx-pos"
    assert main(args) == 0
    first = json.loads((run / "metrics.json").read_text())
    predictions = (run / "predictions.tsv").read_text()
    capsys.readouterr()

    assert main(args + ["--seeds", "7", "8"]) == 0
    err = capsys.readouterr().err
    assert "other seeds; keeping seed(s) 7" in err and "seed 7: kept from the earlier run" in err
    both = json.loads((run / "metrics.json").read_text())
    assert both["seeds"] == [7, 8] and both["scores"][0] == first["scores"][0]
    assert both["runs"][0]["train_seconds"] == first["runs"][0]["train_seconds"]  # not trained again
    assert (run / "seed-7" / "predictions.tsv").read_text() == predictions and (run / "seed-8").is_dir()
    assert not (run / "predictions.tsv").exists()
    assert main(args + ["--seeds", "7", "8"]) == 0
    assert "done already, skipped" in capsys.readouterr().err

    assert main(args + ["--seeds", "8"]) == 0  # fewer seeds: kept, back to the one-seed layout
    one = json.loads((run / "metrics.json").read_text())
    assert one["scores"] == [both["scores"][1]] and not list(run.glob("seed-*"))
    assert (run / "predictions.tsv").is_file()
    capsys.readouterr()

    assert main(args + ["--seeds", "8", "9", "--max-steps", "2"]) == 0  # another setting too: every seed runs
    err = capsys.readouterr().err
    assert "settings changed since it ran" in err and "kept from the earlier run" not in err


def test_an_interrupted_job_keeps_its_finished_seeds(tiny_bert, tmp_path, capsys, monkeypatch):
    """A job of several seeds stopped after its first seed: the rerun trains only the seeds that did not finish,
    and the result is the one an uninterrupted run writes."""
    import eliquare.evaluate.finetune as finetune_module

    data = _data(tmp_path)
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    args = [
        "evaluate",
        "--suite",
        str(suite),
        "--var",
        f"data={data}",
        f"model={tiny_bert}",
        "--only",
        "xx-pos",
        "--seeds",
        "7",
        "8",
        "9",
    ]
    assert main(args + ["--out", str(tmp_path / "whole")]) == 0
    whole = json.loads((tmp_path / "whole" / "runs" / "tiny" / "xx-pos" / "metrics.json").read_text())

    train_one, trained = finetune_module._train_one, []

    def stopped_at_8(cfg, data, tokenizer, feats, vocab, out, seed):
        if seed == 8:
            raise KeyboardInterrupt
        trained.append(seed)
        return train_one(cfg, data, tokenizer, feats, vocab, out, seed)

    monkeypatch.setattr(finetune_module, "_train_one", stopped_at_8)
    out = tmp_path / "out"
    run = out / "runs" / "tiny" / "xx-pos"
    assert main(args + ["--out", str(out)]) == 130
    assert trained == [7] and not (run / "metrics.json").exists() and (run / "seed-7" / "metrics.json").is_file()
    monkeypatch.setattr(finetune_module, "_train_one", train_one)
    capsys.readouterr()
    assert main(args + ["--out", str(out), "--dry-run"]) == 0
    assert "to run (interrupted; keeping its finished seed(s) 7)" in capsys.readouterr().err

    monkeypatch.setattr(finetune_module, "_train_one", lambda *a: trained.append(a[-1]) or train_one(*a))
    assert main(args + ["--out", str(out)]) == 0
    assert trained == [7, 8, 9]  # seed 7 not trained again
    assert "seed 7: kept from the earlier run" in capsys.readouterr().err
    resumed = json.loads((run / "metrics.json").read_text())
    assert resumed["seeds"] == [7, 8, 9] and resumed["scores"] == whole["scores"]
    assert not (run / "seeds-done.json").exists()
    assert main(args + ["--out", str(out)]) == 0
    assert "done already, skipped" in capsys.readouterr().err


def test_only_takes_models_datasets_and_single_jobs():
    jobs = [Job(m, m, {"name": d}, {}) for m in ("teacher", "student") for d in ("xx-pos", "yy-ner")]
    keys = lambda only: [j.key for j in select_jobs(jobs, only)]  # noqa: E731
    assert keys(None) == [j.key for j in jobs]
    assert keys(["student"]) == ["student/xx-pos", "student/yy-ner"]
    assert keys(["yy-ner"]) == ["teacher/yy-ner", "student/yy-ner"]
    assert keys(["teacher/yy-ner", "student/xx-pos"]) == ["teacher/yy-ner", "student/xx-pos"]
    with pytest.raises(EliquareError, match="--only teacher/zz-pos: no such model, dataset or MODEL/DATASET job"):
        select_jobs(jobs, ["teacher/zz-pos"])


def test_a_run_split_with_only_keeps_the_rows_the_other_part_wrote_meanwhile(tiny_bert, tmp_path, monkeypatch):
    """Two cores, one --only each, one OUT: the part that finishes last keeps the other's rows (results.json is read
    again at every write, not only when the part started)."""
    import eliquare.evaluate.suite as suite_module
    from eliquare.evaluate.results import write_results

    data = _data(tmp_path)
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    out = tmp_path / "out"
    args = ["evaluate", "--suite", str(suite), "--out", str(out), "--var", f"data={data}", f"model={tiny_bert}"]
    assert main(args + ["--only", "xx-topic"]) == 0
    topic_row = json.loads((out / "results.json").read_text())["rows"][0]
    (out / "results.json").unlink()  # as if the xx-topic part were still running when the xx-pos part starts
    real = suite_module.run_job

    def other_part_finishes_meanwhile(*a, **k):
        write_results(out, [topic_row], str(suite))
        return real(*a, **k)

    monkeypatch.setattr(suite_module, "run_job", other_part_finishes_meanwhile)
    assert main(args + ["--only", "xx-pos"]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["dataset"], r["status"]) for r in rows] == [("xx-pos", "ok"), ("xx-topic", "ok")]
    assert not list(out.glob("*.tmp"))
