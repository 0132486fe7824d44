"""The learning curve of the pre-VR Swahili student (results/sw-learning-curve): validation loss and health after
every pass of one ten-pass distillation, and the fine-tuned scores of its checkpoints beside the teacher, the
initialisation and the students of one and two passes of their own (shorter) schedules.

Inputs, all committed: `validation.tsv` (the distillation log's per-epoch validation lines, as `eliquare distill`
prints them), `results.json` (the experiment's fine-tuning results), and the reference rows of
results/sw-distil-passes (teacher, two-pass student) and results/sw-news-epochs (one-pass student, initialisation),
fine-tuned with the same settings and seeds.

    python -m analysis.sw_learning_curve --log runs/sw10.log --out results/sw-learning-curve   # validation.tsv too
    python -m analysis.sw_learning_curve --out results/sw-learning-curve                       # curve.csv, curve.md
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from analysis.common import ROOT, parser, write_text
from eliquare.evaluate.results import read_results

VALIDATION = re.compile(r"^step (\d+) \(epoch ([\d.]+)\) validation: (.*)$")
PASSES = {"pass-1": 1, "pass-2": 2, "pass-5": 5, "pass-10": 10}
# (results directory, model name in its results.csv, what the row is)
REFERENCES = [
    ("sw-distil-passes", "e5-small", "teacher"),
    ("sw-news-epochs", "init", "initialisation"),
    ("sw-news-epochs", "pre-vr", "student, 1 pass (1-epoch schedule)"),
    ("sw-distil-passes", "pre-vr-2pass", "student, 2 passes (2-epoch schedule)"),
]


def validation_rows(log_text: str) -> list[dict]:
    """The per-epoch validation lines of a distillation log (progress bars' carriage returns split into lines)."""
    rows = []
    for line in log_text.replace("\r", "\n").splitlines():
        m = VALIDATION.match(line.strip())
        if m:
            measures = dict(part.split("=", 1) for part in m.group(3).split())
            rows.append({"step": int(m.group(1)), "epoch": float(m.group(2)), **measures})
    return rows


def to_table(rows: list[dict], delimiter: str = "\t") -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def read_validation(path: Path) -> list[dict]:
    """validation.tsv as written by ``to_table(validation_rows(...))``, the epoch a number again."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for r in rows:
        r["epoch"] = float(r["epoch"])
    return rows


def curve(results: list[dict], results_root: Path) -> list[dict]:
    """One row per (model, dataset): passes (blank for the references), mean score, seed 1's score, seeds.
    ``results``: this run's rows (``read_results``), the references read from their results directories."""
    rows = []
    for directory, name, what in REFERENCES:
        for r in read_results(results_root / directory).rows:
            if r["model"] == name and r["status"] == "ok":
                rows.append(_row(r, what, "", f"results/{directory}"))
    for r in results:
        if r["model"] in PASSES and r["status"] == "ok":
            rows.append(_row(r, f"student, {PASSES[r['model']]} of 10 passes", PASSES[r["model"]], "this run"))
    return rows


def _row(r: dict, what: str, passes, source: str) -> dict:
    by_seed = {int(s): float(x) for s, x in zip(r["seeds"], r["scores"])}
    return {
        "dataset": r["dataset"],
        "model": what,
        "passes": passes,
        "mean": round(100 * sum(by_seed.values()) / len(by_seed), 2),
        "seed_1": round(100 * by_seed[1], 2) if 1 in by_seed else "",
        "seeds": len(by_seed),
        "source": source,
    }


def report(validation: list[dict], rows: list[dict]) -> str:
    lines = [
        "# Learning curve of the pre-VR Swahili student",
        "",
        "One distillation of ten passes (the README's settings, `--epochs 10`, a checkpoint kept at every epoch);",
        "its checkpoints fine-tuned as the committed teacher and students were (10 epochs, lr 5e-5, seeds 1-3 or",
        "seed 1). Built by `python -m analysis.sw_learning_curve --out results/sw-learning-curve`.",
        "",
        "## Validation and health after each pass",
        "",
        "| pass | loss | cos | mlm | MLM accuracy | collapse | CKA | neighbours | NER probe |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in validation:
        lines.append(
            f"| {v['epoch']:g} | {v['loss']} | {v['cos']} | {v['mlm']} | {v['mlm_accuracy']} | {v['collapse']} | "
            f"{v['cka']} | {v['neighbours']} | {v['probe']} |"
        )
    lines += [
        "",
        "Collapse: mean pairwise cosine of last-layer token states (teacher 0.654, initialisation 0.317); CKA and",
        "neighbours: with the teacher; probe: frozen-feature NER macro-F1 on the sw NER test sentences (teacher",
        "0.566, initialisation 0.626).",
        "",
        "## Fine-tuned scores (F1 x 100)",
        "",
        "| dataset | model | passes | mean | seed 1 | seeds | source |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["dataset"], r["passes"] if r["passes"] != "" else -1)):
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['passes']} | {r['mean']:.2f} | {r['seed_1']} | {r['seeds']} | "
            f"{r['source']} |"
        )
    return "\n".join(lines) + "\n"


def figure(validation: list[dict], rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = [v["epoch"] for v in validation]
    left.plot(epochs, [float(v["cka"]) for v in validation], marker="o", label="CKA with the teacher")
    left.plot(epochs, [float(v["collapse"]) for v in validation], marker="o", label="collapse (pairwise cosine)")
    left.plot(epochs, [float(v["probe"]) for v in validation], marker="o", label="frozen NER probe")
    left.set_xlabel("passes over the corpus")
    left.set_title("health per pass")
    left.legend(fontsize=8)
    news = [r for r in rows if r["dataset"] == "sw-news"]
    curve_rows = sorted((r for r in news if r["passes"] != ""), key=lambda r: r["passes"])
    right.plot([r["passes"] for r in curve_rows], [r["seed_1"] for r in curve_rows], marker="o", label="this run")
    for r in news:
        if r["passes"] == "" and r["seed_1"] != "":
            right.axhline(r["seed_1"], linestyle="--", linewidth=1, label=r["model"], color=_colour(r["model"]))
    right.set_xlabel("passes over the corpus")
    right.set_ylabel("sw news macro-F1, seed 1")
    right.set_title("fine-tuned (seed 1)")
    right.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _colour(what: str) -> str:
    return {"teacher": "black", "initialisation": "grey"}.get(what, "tab:orange" if "1 pass" in what else "tab:green")


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "sw-learning-curve")
    p.add_argument("--log", type=Path, help="a distillation log to read validation.tsv from")
    a = p.parse_args()
    if a.log:
        write_text(a.out / "validation.tsv", to_table(validation_rows(a.log.read_text(encoding="utf-8"))))
    validation = read_validation(a.out / "validation.tsv")
    rows = curve(read_results(a.out).rows, a.out.parent)
    write_text(a.out / "curve.csv", to_table(rows, delimiter=","))
    write_text(a.out / "curve.md", report(validation, rows))
    figure(validation, rows, a.out / "figures" / "curve.png")


if __name__ == "__main__":
    main()
