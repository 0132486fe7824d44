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
