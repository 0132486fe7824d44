"""results/collapse's health table and report from what results/collapse/run.sh wrote: health-*.json (committed)
and the fine-tuned scores in RUNS/ft/*/metrics.json.

    .venv/bin/python -m analysis.collapse runs/collapse

Writes table.md and report.md (report.template.md with variants-40-steps.md, the table and findings.md filled in)
into --out, by default the --results directory it reads from.
"""

from __future__ import annotations

from pathlib import Path

from analysis.common import ROOT, load_json, parser, read_json, write_text

FINETUNED = {"sw": "sw-ner", "sl": "sl-pos"}  # the fine-tuned task of each language


def finetuned(runs: Path, name: str) -> str:
    """``TASK METRIC SCORE`` of the fine-tune RUNS/ft/NAME, or "" where it has not run."""
    m = load_json(runs / "ft" / name / "metrics.json")
    if m is None:
        return ""
    return f"{m['task']} {m['metric']} {m['score']:.4f}"


def table(results: Path, runs: Path) -> str:
    """One row per language and model of health-LANG.json; the initialisation and the one-pass (sw) or half-pass
    (sl) student also carry their fine-tuned score."""
    lines = [
        "| language | model | collapse (last layer) | pooled collapse | CKA with teacher | "
        "top-5 neighbour overlap | probes | fine-tuned |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for lang, task in FINETUNED.items():
        path = results / f"health-{lang}.json"
        if not path.is_file():
            continue
        for model, row in read_json(path)["results"].items():
            probes = ", ".join(f"{k[6:]} {v:.3f}" for k, v in row.items() if k.startswith("probe:"))
            ft = (
                finetuned(runs, f"{task}-init")
                if model == "initialisation"
                else finetuned(runs, f"{task}-pass")
                if model in ("one-pass", "half-pass")
                else ""
            )
            lines.append(
                f"| {lang} | {model} | {row['collapse_last']:.3f} | {row['pooled_collapse']:.3f} | "
                f"{row.get('cka', 1.0):.3f} | {row.get('neighbours', 1.0):.3f} | {probes} | {ft} |"
            )
    return "\n".join(lines)


def report(results: Path, table_text: str) -> str:
    findings = (
        (results / "findings.md").read_text(encoding="utf-8").strip() if (results / "findings.md").is_file() else ""
    )
    return (
        (results / "report.template.md")
        .read_text(encoding="utf-8")
        .replace("{{variants}}", (results / "variants-40-steps.md").read_text(encoding="utf-8").strip())
        .replace("{{table}}", table_text)
        .replace("{{findings}}", findings)
    )


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument(
        "runs",
        nargs="?",
        default=str(ROOT / "runs" / "collapse"),
        help="run.sh's working directory (the fine-tunes are in RUNS/ft)",
    )
    ap.add_argument(
        "--results",
        default=str(ROOT / "results" / "collapse"),
        help="health-*.json, report.template.md, variants-40-steps.md and findings.md",
    )
    ap.add_argument("--out", help="where table.md and report.md go (default: --results)")
    args = ap.parse_args(argv)
    results, runs = Path(args.results), Path(args.runs)
    out = Path(args.out) if args.out else results
    text = table(results, runs)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "table.md", text + "\n")
    write_text(out / "report.md", report(results, text))
    print(text)


if __name__ == "__main__":
    main()
