"""The headline table: teacher against pre-VR student on the four Swahili and Slovene tasks at the paper's 10
fine-tuning epochs (sl NER at 50, for every model alike), gathered from the committed results of the experiments
that measured each task, with the ratios and a Wilcoxon test over (task, seed) pairs.

Nothing is trained here: every score is read from a committed results.json / metrics.json (eliquare's
`read_results`), so the table can be checked against its sources and rebuilt when one of them changes:

    python -m analysis.headline --out results/headline

Writes headline.json, headline.csv, languages.csv (the six languages, ``analysis.languages``) and report.md in --out.
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

from analysis import languages
from analysis.common import ROOT, parser, write_json, write_text
from eliquare.evaluate.compare import wilcoxon
from eliquare.evaluate.results import read_results

COMMAND = "python -m analysis.headline --out results/headline"  # what the report says gathered it

# (task, column) -> (sources, model): where each cell's scores were measured (a results directory and the model's
# name in it, or the metrics.json files of fine-tunes run apart, separated by spaces). Columns: the teacher; the pre-VR
# student at the paper's 0.05% VocabReduce threshold; the pre-VR student with every corpus sub-word; the untrained
# initialisation of each (teacher layers 1, 3, ..., 11 on the same vocabulary).
TASKS = ["sl UPOS", "sw NER", "sl NER", "sw news"]
COLUMNS = ["teacher", "student-0.05%", "student-every-subword", "init-0.05%", "init-every-subword"]
CELLS = {
    ("sl UPOS", "teacher"): ("results/sl-pos-epochs", "e5-small"),
    ("sl UPOS", "student-0.05%"): ("results/sl-pos-epochs", "pre-vr"),
    ("sl UPOS", "student-every-subword"): (
        "results/sl-ner-annotated/pos-metrics-13.json results/sl-ner-annotated/pos-metrics-2.json",
        None,
    ),
    ("sl UPOS", "init-0.05%"): ("results/sl-pos-epochs", "init"),
    ("sw NER", "teacher"): ("results/sw-ner-seeds", "e5-small"),
    ("sw NER", "student-0.05%"): ("results/sw-ner-seeds", "pre-vr-2pass"),
    ("sw NER", "student-every-subword"): ("results/sw-ner-vocab", "pre-vr-min1-2pass"),
    ("sw NER", "init-0.05%"): (
        "results/sw-ner-seeds/init-metrics.json results/sw-ner-seeds/init-metrics-23.json",
        None,
    ),
    ("sw NER", "init-every-subword"): (
        "results/sw-ner-vocab/init-metrics-1.json "
        "results/sw-ner-vocab/init-metrics-2.json "
        "results/sw-ner-vocab/init-metrics-3.json",
        None,
    ),
    ("sl NER", "teacher"): ("results/sl-ner-annotated", "e5-small"),
    ("sl NER", "student-0.05%"): ("results/sl-ner-annotated", "pre-vr"),
    ("sl NER", "student-every-subword"): ("results/sl-ner-annotated", "pre-vr-min1"),
    ("sl NER", "init-0.05%"): ("results/sl-ner-annotated", "init"),
    ("sl NER", "init-every-subword"): ("results/sl-ner-annotated", "init-min1"),
    ("sw news", "teacher"): ("results/sw-distil-passes", "e5-small"),
    ("sw news", "student-0.05%"): ("results/sw-distil-passes", "pre-vr-2pass"),
    ("sw news", "init-0.05%"): ("results/sw-news-epochs", "init"),  # the same initialisation as the two-pass student's
    ("sw news", "student-every-subword"): ("results/sw-ner-vocab/news-metrics.json", None),
    ("sw news", "init-every-subword"): ("results/sw-ner-vocab/init-news-metrics.json", None),
}
# Further students, measured on some tasks so far: (column, what it is) and their cells; each is compared with the
# teacher and, where it has one, with its initialisation (EXTRA_INIT), over the seeds both have.
EXTRA_COLUMNS = [
    ("student-10-passes", "the 0.05% student after 10 distillation passes (the paper's budget)"),
    (
        "task-distilled",
        "the two-pass 0.05% student fine-tuned on gold labels + the fine-tuned teacher's soft targets "
        "on the training texts",
    ),
    ("task-distilled-corpus", "the same, with soft targets on 500 sw corpus passages too"),
    ("init-ft-teacher", "the fine-tuned teacher's layers 1, 3, ..., 11 on the 0.05% vocabulary, fine-tuned as usual"),
    ("task-distilled-ft-init", "that initialisation fine-tuned on gold labels + soft targets"),
]
EXTRA_INIT = {
    "student-10-passes": "init-0.05%",
    "task-distilled": "init-0.05%",
    "task-distilled-corpus": "init-0.05%",
    "init-ft-teacher": "init-0.05%",
    "task-distilled-ft-init": "init-ft-teacher",
}
CELLS.update(
    {
        ("sw news", "student-10-passes"): ("results/sw-learning-curve", "pass-10"),
        ("sw news", "task-distilled"): ("results/sw-task-distill", "student-soft-train"),
        ("sw news", "task-distilled-corpus"): ("results/sw-task-distill", "student-soft"),
        ("sw news", "init-ft-teacher"): ("results/sw-task-distill", "init-ft-teacher"),
        ("sw news", "task-distilled-ft-init"): ("results/sw-task-distill", "init-ft-teacher-soft"),
    }
)
DATASET = {"sl UPOS": "sl-pos", "sw NER": "sw-ner", "sl NER": "sl-ner", "sw news": "sw-news"}


def paired(a: dict, b: dict) -> tuple[list[float], list[float], list[int]]:
    """The scores of two cells on the seeds both have."""
    seeds = [s for s in a["seeds"] if s in b["seeds"]]
    da, db = dict(zip(a["seeds"], a["scores"])), dict(zip(b["seeds"], b["scores"]))
    return [da[s] for s in seeds], [db[s] for s in seeds], seeds


def extra_rows(table: list[dict]) -> list[dict]:
    """One row per measured (task, further column): its scores against the teacher and its initialisation."""
    rows = []
    for column, what in EXTRA_COLUMNS:
        for row in table:
            cell = row.get(column)
            if cell is None:
                continue
            init = row.get(EXTRA_INIT[column])
            x, t, seeds = paired(cell, row["teacher"])
            entry = {
                "task": row["task"],
                "column": column,
                "what": what,
                "seeds": cell["seeds"],
                "mean": cell["mean"],
                "std": cell["std"],
                "ratio": cell["ratio"],
                "paired_seeds": seeds,
                "minus_teacher": statistics.fmean(a - b for a, b in zip(x, t)) if seeds else None,
                "wilcoxon": wilcoxon(x, t) if seeds else None,  # against the teacher, over the paired seeds
                "init": EXTRA_INIT[column] if init else None,
                "minus_init": None,
            }
            if init:
                xi, i, _ = paired(cell, init)
                entry["minus_init"] = statistics.fmean(a - b for a, b in zip(xi, i)) if xi else None
            rows.append(entry)
    return rows


def read_cell(root: Path, task: str, source: str, model: str | None) -> dict | None:
    """{seed: score} and the row's facts for one cell, or None when its source is not there."""
    rows = []
    for one in source.split():  # a results directory, or metrics.json files (seeds run apart)
        path = root / one
        if not (path / "results.json" if path.is_dir() else path).is_file():
            return None
        found = read_results(path).rows
        if path.is_dir():  # a results directory: the named model's row of this task's dataset
            found = [r for r in found if r["model"] == model and r["dataset"] == DATASET[task]]
        rows += found
    rows = [r for r in rows if r.get("status", "ok") == "ok" and r.get("scores")]
    if not rows:
        return None
    scores = {}
    for r in rows:
        scores.update({int(s): float(x) for s, x in zip(r["seeds"], r["scores"])})
    return {
        "scores": scores,
        "parameters": rows[0].get("parameters"),
        "metric": rows[0].get("metric"),
        "source": source,
        "model": model or rows[0].get("model"),
    }


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--root", default=str(ROOT), help="the repository (sources are read relative to it)")
    ap.add_argument("--out", default=str(ROOT / "results" / "headline"))
    args = ap.parse_args(argv)
    root, out = Path(args.root), Path(args.out)

    cells = {(t, c): read_cell(root, t, *CELLS[(t, c)]) for (t, c) in CELLS}
    missing = [f"{CELLS[(t, 'teacher')][0]} ({t})" for t in TASKS if cells[(t, "teacher")] is None]
    if missing:
        raise SystemExit(f"headline: no teacher scores in {', '.join(missing)}; run that experiment's report first")
    table = []
    for t in TASKS:
        teacher = cells.get((t, "teacher"))
        row = {"task": t, "metric": teacher["metric"] if teacher else None}
        for c in COLUMNS + [c for c, _ in EXTRA_COLUMNS]:
            cell = cells.get((t, c))
            if cell is None:
                row[c] = None
                continue
            xs = [cell["scores"][s] for s in sorted(cell["scores"])]
            row[c] = {
                "mean": 100 * statistics.fmean(xs),
                "std": 100 * statistics.stdev(xs) if len(xs) > 1 else 0.0,
                "seeds": sorted(cell["scores"]),
                "scores": [100 * x for x in xs],
                "ratio": statistics.fmean(xs) / statistics.fmean(teacher["scores"].values()) if teacher else None,
                "parameters": cell["parameters"],
                "source": cell["source"],
                "model": cell["model"],
            }
        table.append(row)

    summary = {}
    for c in ("student-0.05%", "student-every-subword"):
        # a column without its own cell for a task (sl UPOS has no every-sub-word student) takes the 0.05% one,
        # as the README's table does, and says so
        ratios, borrowed, a, b, pairs = [], [], [], [], []
        for row in table:
            cell = row[c] or row["student-0.05%"]
            if row[c] is None:
                borrowed.append(row["task"])
            ratios.append(cell["ratio"])
            t_scores = dict(zip(row["teacher"]["seeds"], row["teacher"]["scores"]))
            for s, x in zip(cell["seeds"], cell["scores"]):
                if s in t_scores:
                    a.append(x), b.append(t_scores[s]), pairs.append(f"{row['task']}/{s}")
        means = [(row[c] or row["student-0.05%"])["mean"] for row in table]
        params = {
            row["task"]: (row[c] or row["student-0.05%"])["parameters"] / row["teacher"]["parameters"] for row in table
        }
        teacher_mean = statistics.fmean(r["teacher"]["mean"] for r in table)
        summary[c] = {
            "average_score_ratio": statistics.fmean(means) / teacher_mean,
            "mean_ratio": statistics.fmean(ratios),
            "parameters_ratio": params,
            "lowest_task_ratio": min(ratios),
            "lowest_task": table[ratios.index(min(ratios))]["task"],
            "borrowed_from_0.05%": borrowed,
            "wilcoxon": {**wilcoxon(a, b), "pairs": pairs},
        }

    extra = extra_rows(table)
    six = languages.gather(root, table)
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / "headline.json", {"table": table, "summary": summary, "further": extra, "languages": six}, indent=2
    )
    languages.write_csv(out / "languages.csv", six)
    with open(out / "headline.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["task", "column", "model", "source", "seeds", "mean", "std", "ratio", "parameters"])
        for row in table:
            for c in COLUMNS + [c for c, _ in EXTRA_COLUMNS]:
                if row[c]:
                    x = row[c]
                    w.writerow(
                        [
                            row["task"],
                            c,
                            x["model"],
                            x["source"],
                            ";".join(map(str, x["seeds"])),
                            f"{x['mean']:.2f}",
                            f"{x['std']:.2f}",
                            f"{x['ratio']:.3f}",
                            x["parameters"],
                        ]
                    )

    def fmt(x, n):
        seeds = "" if x is None or len(x["seeds"]) == n else f" ({len(x['seeds'])} seeds)"
        return "-" if x is None else f"{x['mean']:.1f} ± {x['std']:.1f}{seeds}"

    def ratio(x):
        return "-" if x is None else f"{x['ratio']:.3f}"

    lines = [
        "| task (seeds) | teacher | student, 0.05% | / teacher | student, every sub-word | / teacher "
        "| init, 0.05% | init, every sub-word |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in table:
        n = len(row["teacher"]["seeds"])
        lines.append(
            f"| {row['task']} ({n}) | {fmt(row['teacher'], n)} | {fmt(row['student-0.05%'], n)} | "
            f"{ratio(row['student-0.05%'])} | {fmt(row['student-every-subword'], n)} | "
            f"{ratio(row['student-every-subword'])} | {fmt(row['init-0.05%'], n)} | "
            f"{fmt(row['init-every-subword'], n)} |"
        )
    for c, name in (("student-0.05%", "0.05% students"), ("student-every-subword", "every-sub-word students")):
        s = summary[c]
        wx = s["wilcoxon"]
        note = f" ({', '.join(s['borrowed_from_0.05%'])}: the 0.05% student)" if s["borrowed_from_0.05%"] else ""
        lines += [
            "",
            f"- {name}{note}: average score over the four tasks {s['average_score_ratio']:.3f} of the "
            f"teacher's (target 0.99; the mean of the four ratios: {s['mean_ratio']:.3f}), lowest "
            f"{s['lowest_task_ratio']:.3f} on {s['lowest_task']} (target: none below 0.97); Wilcoxon signed-rank "
            f"over {wx['n']} (task, seed) pairs: student better on {wx['a_better']}, "
            f"teacher on {wx['b_better']}, "
            f"mean difference {wx['mean_difference']:+.2f} points, W = {wx['statistic']:g}, "
            f"p = {wx['p_value']:.2g}; parameters {min(s['parameters_ratio'].values()):.3f}-"
            f"{max(s['parameters_ratio'].values()):.3f} of the teacher's (target <= 0.25)",
        ]
    if extra:
        lines += [
            "",
            "## Further students (the tasks measured so far)",
            "",
            "| task | column | seeds | score | / teacher | - teacher (paired seeds) | Wilcoxon p (floor) "
            "| - initialisation |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for e in extra:
            vs_t = "-" if e["minus_teacher"] is None else f"{e['minus_teacher']:+.2f} ({len(e['paired_seeds'])})"
            vs_i = "-" if e["minus_init"] is None else f"{e['minus_init']:+.2f} ({e['init']})"
            w = e["wilcoxon"]
            test = "-" if w is None else f"{w['p_value']:.2g} ({w['min_p_value']:.2g})"
            lines.append(
                f"| {e['task']} | {e['column']} | {len(e['seeds'])} | {e['mean']:.1f} ± {e['std']:.1f} | "
                f"{e['ratio']:.3f} | {vs_t} | {test} | {vs_i} |"
            )
        lines += [""] + [f"- {c}: {what}." for c, what in EXTRA_COLUMNS if any(e["column"] == c for e in extra)]
        lines += [
            "- Wilcoxon p: the two-sided signed-rank test of the column against the teacher over the paired seeds; "
            "with n untied pairs p cannot fall below 2/2^n (the floor in brackets), so fewer than 6 pairs cannot "
            "show a difference at 0.05 either way."
        ]
    lines += languages.section(six)
    text = (
        "# Headline: e5-small against its pre-VR students, Swahili and Slovene, 10 fine-tuning epochs\n\n"
        f"Gathered by `{COMMAND}` from the committed results "
        "named in `headline.csv` (score x 100, mean ± sd over seeds; sl NER: the NER-annotated documents, 50 "
        "epochs for every model; sw NER and sw news students: two distillation passes, sl students: one).\n\n"
        + "\n".join(lines)
        + "\n"
    )
    write_text(out / "report.md", text)
    print(text)


if __name__ == "__main__":
    main()
