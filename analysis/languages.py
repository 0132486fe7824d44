"""The paper's Tables 4 and 5 over its six languages: each language experiment's teacher, pre-VR, post-VR and basic
(full vocabulary) students and the initialisation on its two tasks, the students' size and inference speed-up beside
the teacher, and a Wilcoxon signed-rank test of the best student against the teacher over all (task, seed) pairs.

Read from the committed results of the language experiments (``experiments/<lang>.yaml`` -> ``results/<lang>``) and,
for Swahili and Slovene, from the headline table's cells (their students are pre-VR). A language whose experiment has
not been run yet is listed as missing. ``analysis.headline`` calls this and writes its section and
``languages.csv``; nothing is trained here.
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

from analysis.common import load_json
from eliquare.evaluate.compare import wilcoxon
from eliquare.evaluate.results import read_results

LANGUAGES = ["fr", "nl", "he", "hi"]  # experiments/<lang>.yaml, results in results/<lang>
TEACHER = "e5-small"
STUDENTS = ["pre-vr", "post-vr", "basic"]  # the paper's variants: VocabReduce before, after, never
COLUMNS = ["teacher", *STUDENTS, "init"]
LABELS = {"UPOS": "UPOS", "news topic": "news", "sentiment": "sentiment", "NER": "NER"}


def _cell(rows: list[dict]) -> dict | None:
    """Seeds and scores (x 100) of one model on one dataset, from its results rows."""
    scores: dict[int, float] = {}
    for r in rows:
        if r.get("status", "ok") == "ok" and r.get("scores"):
            scores.update({int(s): 100 * float(x) for s, x in zip(r["seeds"], r["scores"])})
    if not scores:
        return None
    xs = [scores[s] for s in sorted(scores)]
    return {
        "seeds": sorted(scores),
        "scores": xs,
        "mean": statistics.fmean(xs),
        "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
        "parameters": rows[0].get("parameters"),
        "tokens_per_second": statistics.fmean(r["tokens_per_second"] for r in rows if r.get("tokens_per_second"))
        if any(r.get("tokens_per_second") for r in rows)
        else None,
    }


def language_rows(root: Path, language: str) -> list[dict] | None:
    """One row per task of ``results/<language>``: its metric and a cell per column (None where not measured), or
    None when the language's results are not committed."""
    path = root / "results" / language
    if not (path / "results.json").is_file():
        return None
    found = read_results(path).rows
    table = []
    for dataset in dict.fromkeys(r["dataset"] for r in found):
        of = [r for r in found if r["dataset"] == dataset]
        label = of[0].get("label") or of[0].get("task")
        row = {
            "task": f"{language} {LABELS.get(label, label)}",
            "language": language,
            "dataset": dataset,
            "metric": of[0].get("metric"),
            "source": f"results/{language}",
        }
        for column in COLUMNS:
            model = TEACHER if column == "teacher" else column
            row[column] = _cell([r for r in of if r["model"] == model])
        table.append(row)
    return table


def _ratio(cell: dict | None, teacher: dict | None) -> float | None:
    return cell["mean"] / teacher["mean"] if cell and teacher else None


def student_sizes(root: Path, language: str, rows: list[dict]) -> list[dict]:
    """Each student's parameters and inference speed-up against the teacher: from ``students.json`` (the encoders
    timed side by side at the end of distillation) where the experiment wrote one, else from the fine-tunes' test
    throughput (tokens per second, each model timed in its own job)."""
    recorded = {
        s["name"]: s for s in (load_json(root / "results" / language / "students.json") or {}).get("students", [])
    }
    sizes = []
    for name in STUDENTS:
        cells = [(r[name], r["teacher"]) for r in rows if r[name] and r["teacher"]]
        if not cells and name not in recorded:
            continue
        entry = {"language": language, "student": name, "parameters_ratio": None, "speed_up": None, "speed_from": None}
        params = [c["parameters"] / t["parameters"] for c, t in cells if c["parameters"] and t["parameters"]]
        if params:  # as fine-tuned, the task head included
            entry["parameters_ratio"] = max(params)
        if (s := recorded.get(name)) and s.get("speed_up"):
            entry["speed_up"], entry["speed_from"] = s["speed_up"], "interleaved (students.json)"
        else:
            speeds = [c["tokens_per_second"] / t["tokens_per_second"] for c, t in cells if c["tokens_per_second"]]
            if speeds:
                entry["speed_up"], entry["speed_from"] = statistics.fmean(speeds), "fine-tune test throughput"
        sizes.append(entry)
    return sizes


def best_student(table: list[dict]) -> tuple[str | None, dict]:
    """The student variant with the highest mean ratio to the teacher over the tasks it has, and the Wilcoxon test of
    its (task, seed) pairs against the teacher's."""
    means = {}
    for name in STUDENTS:
        ratios = [r for r in (_ratio(row[name], row["teacher"]) for row in table) if r is not None]
        if ratios:
            means[name] = statistics.fmean(ratios)
    if not means:
        return None, {}
    name = max(means, key=means.__getitem__)
    a, b, pairs = [], [], []
    for row in table:
        if row[name] and row["teacher"]:
            t = dict(zip(row["teacher"]["seeds"], row["teacher"]["scores"]))
            for s, x in zip(row[name]["seeds"], row[name]["scores"]):
                if s in t:
                    a.append(x), b.append(t[s]), pairs.append(f"{row['task']}/{s}")
    ratios = {row["task"]: _ratio(row[name], row["teacher"]) for row in table if row[name]}
    summary = {
        "student": name,
        "mean_ratio": means[name],
        "tasks": len(ratios),
        "lowest_task": min(ratios, key=lambda k: ratios[k]) if ratios else None,
        "lowest_ratio": min(ratios.values()) if ratios else None,
        "wilcoxon": {**wilcoxon(a, b), "pairs": pairs} if len(a) >= 1 else None,
    }
    return name, summary


def write_csv(path: Path, six: dict) -> None:
    """One line per (task, column) measured: its seeds, mean, sd and ratio to the teacher."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["task", "column", "source", "seeds", "mean", "std", "ratio"])
        for row in six["table"]:
            for column in COLUMNS:
                if cell := row[column]:
                    ratio = _ratio(cell, row["teacher"])
                    w.writerow(
                        [
                            row["task"],
                            column,
                            cell.get("source", row["source"]),
                            ";".join(map(str, cell["seeds"])),
                            f"{cell['mean']:.2f}",
                            f"{cell['std']:.2f}",
                            "" if ratio is None else f"{ratio:.3f}",
                        ]
                    )


def gather(root: Path, sw_sl: list[dict]) -> dict:
    """The six-language table: ``sw_sl`` (the headline's rows, their pre-VR student as ``pre-vr``) and every
    committed language experiment; the students' sizes; the best student's test; the languages still missing."""
    table, sizes, missing = [], [], []
    for row in sw_sl:
        table.append(
            {
                "task": row["task"],
                "language": row["task"].split()[0],
                "dataset": None,
                "metric": row["metric"],
                "source": row["teacher"]["source"],
                "teacher": _headline_cell(row["teacher"]),
                "pre-vr": _headline_cell(row.get("student-0.05%")),
                "post-vr": None,
                "basic": None,
                "init": _headline_cell(row.get("init-0.05%")),
            }
        )
    for language in LANGUAGES:
        rows = language_rows(root, language)
        if rows is None:
            missing.append(language)
            continue
        table += rows
        sizes += student_sizes(root, language, rows)
    name, summary = best_student(table)
    return {"table": table, "sizes": sizes, "best": summary if name else None, "missing": missing}


def _headline_cell(cell: dict | None) -> dict | None:
    if cell is None:
        return None
    return {k: cell[k] for k in ("seeds", "scores", "mean", "std", "parameters", "source")} | {
        "tokens_per_second": None
    }


def section(six: dict) -> list[str]:
    """The report's lines for the six-language table."""

    def fmt(cell, teacher):
        if cell is None:
            return "-"
        seeds = f" ({len(cell['seeds'])})" if teacher and len(cell["seeds"]) != len(teacher["seeds"]) else ""
        ratio = f" ({cell['mean'] / teacher['mean']:.3f})" if teacher and cell is not teacher else ""
        return f"{cell['mean']:.1f} ± {cell['std']:.1f}{seeds}{ratio}"

    lines = [
        "",
        "## Six languages (the paper's Tables 4 and 5)",
        "",
        "Score x 100, mean ± sd over seeds (their number in brackets where it differs from the teacher's), the ratio "
        "to the teacher's mean after it. sw and sl: the headline's cells above (their students are pre-VR at the "
        "0.05% threshold, fine-tuned for 10 epochs); the other languages: `results/<lang>` "
        "(`experiments/<lang>.yaml`, today's default recipe, one distillation pass, fine-tuning budgets as each "
        "YAML says).",
        "",
        "| task (teacher seeds) | teacher | pre-VR | post-VR | basic | init |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in six["table"]:
        t = row["teacher"]
        lines.append(
            f"| {row['task']} ({len(t['seeds']) if t else 0}) | {fmt(t, None)} | "
            + " | ".join(fmt(row[c], t) for c in (*STUDENTS, "init"))
            + " |"
        )
    if six["sizes"]:
        lines += [
            "",
            "| language | student | parameters / teacher | inference speed-up | speed measured |",
            "|---|---|---:|---:|---|",
        ]
        for s in six["sizes"]:
            p = "-" if s["parameters_ratio"] is None else f"{s['parameters_ratio']:.3f}"
            v = "-" if s["speed_up"] is None else f"{s['speed_up']:.2f}x"
            lines.append(f"| {s['language']} | {s['student']} | {p} | {v} | {s['speed_from'] or '-'} |")
    if six["best"]:
        b, w = six["best"], six["best"]["wilcoxon"]
        test = (
            f"Wilcoxon signed-rank over {w['n']} (task, seed) pairs: student better on {w['a_better']}, teacher on "
            f"{w['b_better']}, mean difference {w['mean_difference']:+.2f} points, W = {w['statistic']:g}, "
            f"p = {w['p_value']:.2g}"
            if w
            else "no paired seeds"
        )
        lines += [
            "",
            f"- Best student: {b['student']}, mean ratio to the teacher {b['mean_ratio']:.3f} "
            f"over {b['tasks']} task(s) (target 0.99), lowest {b['lowest_ratio']:.3f} on {b['lowest_task']} (target: "
            f"none below 0.97); {test}.",
        ]
    if six["missing"]:
        lines += ["", f"- Not distilled yet: {', '.join(six['missing'])} (`experiments/<lang>.yaml`)."]
    return lines
