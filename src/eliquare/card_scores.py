"""The downstream part of a student's model card: the results rows of `eliquare evaluate` that score the student,
beside the teacher's score on the same datasets, as a Markdown table and as Hugging Face ``model-index``.
"""

from __future__ import annotations

from pathlib import Path

_METRIC_NAMES: dict[object, str] = {"accuracy": "accuracy", "f1": "f1", "macro_f1": "macro-F1"}


def _metric_name(row: dict) -> str:
    return _METRIC_NAMES.get(row.get("metric"), row.get("metric", ""))


def downstream_table(rows: list[dict], teacher_rows: dict) -> list[str]:
    """The card's Downstream scores: each of the student's rows beside the teacher's score on its dataset."""
    if not rows:
        return ["Not evaluated yet: `eliquare evaluate` with this directory among its `--models` fills this section."]
    lines = ["| dataset | task | metric | student | teacher | seeds |", "|---|---|---|---:|---:|---|"]
    for r in rows:
        t = teacher_rows.get(r["dataset"])
        lines.append(
            f"| {r['dataset']} | {r.get('label') or r['task']} | {_metric_name(r)} | "
            f"{100 * r['score']:.1f} | {'' if t is None else f'{100 * t:.1f}'} | "
            f"{', '.join(map(str, r.get('seeds') or []))} |"
        )
    return lines


def model_index(name: str, rows: list[dict]) -> list[dict]:
    """The student's test scores as Hugging Face ``model-index`` front matter."""
    results = [
        {
            "task": {
                "type": {
                    "pos": "token-classification",
                    "ner": "token-classification",
                    "classify": "text-classification",
                }.get(r["task"], r["task"]),
                "name": r.get("label") or r["task"],
            },
            "dataset": {"name": r["dataset"], "type": r["dataset"]},
            "metrics": [
                {
                    "type": r.get("metric") or "score",
                    "value": round(100 * r["score"], 2),
                    "name": f"test {_metric_name(r)}",
                }
            ],
        }
        for r in rows
    ]
    return [{"name": name, "results": results}]


def student_rows(directory: Path, rows: list[dict], record: dict) -> tuple[list[dict], dict]:
    """The results rows scoring this directory, and the teacher's score on each of their datasets."""
    here = directory.resolve()

    def is_here(spec) -> bool:
        try:
            return bool(spec) and Path(str(spec)).expanduser().resolve() == here
        except OSError:
            return False

    mine = [
        r
        for r in rows
        if r.get("status") == "ok" and isinstance(r.get("score"), (int, float)) and is_here(r.get("model_spec"))
    ]
    teachers = {str(record.get("teacher")), str(record.get("teacher_path"))}
    teacher = {
        r["dataset"]: r["score"]
        for r in rows
        if r.get("status") == "ok" and isinstance(r.get("score"), (int, float)) and str(r.get("model_spec")) in teachers
    }
    return mine, teacher
