"""Collect results/beyond-the-paper from the runs of runs/beyond/run.sh and runs/amp/run.sh (see commands.txt):
layer-wise terms, a Swahili+Slovene student against the monolingual ones, VocabAmp's tokens per word.

    .venv/bin/python -m analysis.beyond_the_paper

Writes results.json and report.md into --out (results/beyond-the-paper); every number is read from the runs' own
records under --runs (runs/).
"""

from __future__ import annotations

from pathlib import Path

from analysis.common import ROOT, parser, write_json, write_markdown
from analysis.common import load_json as load


def last_eval(record: dict) -> dict:
    """The last evaluation's numbers, ``eval_`` dropped (per-layer lists left out)."""
    return {k[5:]: v for k, v in record["validation"][-1].items() if k.startswith("eval_") and not isinstance(v, list)}


def layerwise(runs: Path) -> list[dict]:
    rows = []
    for name in ("base", "hidden", "attn", "value"):  # (the amp run: amp_students)
        record = load(runs / "beyond" / "layerwise" / name / "distillation.json")
        if record is None:
            continue
        e = last_eval(record)
        h = record["health"]
        rows.append(
            {
                "run": name,
                "loss_weights": record["loss_weights"],
                "steps": record["steps"],
                "wall_seconds": record["wall_seconds"],
                "collapse": e.get("collapse"),
                "cka": e.get("cka"),
                "neighbours": e.get("neighbours"),
                "probe_ner_macro_f1": e.get("probe"),
                "term_first": record["validation"][0].get(f"eval_{name}") if name != "base" else None,
                "term_last": e.get(name) if name != "base" else None,
                "teacher_probe": h["teacher"].get("probe"),
                "init_probe": h["initialisation"].get("probe"),
            }
        )
    return rows


def languages(runs: Path) -> list[dict]:
    """Each language's held-out task sentences through `eliquare health` (frozen-feature probe, collapse, CKA), with
    the same settings for the monolingual student and the Swahili+Slovene one: sw NER (MasakhaNER test, macro-F1),
    sl UPOS (SSJ test, accuracy)."""
    rows = []

    def probe(d):
        return next((v for k, v in d.items() if k.startswith("probe:")), None)

    for language, task in (("sw", "ner"), ("sl", "pos")):
        for model in (language, "sw-sl"):
            health = load(runs / "beyond" / f"health-{language}-{model}.json")
            record = load(runs / "beyond" / "languages" / model / "distillation.json")
            if health is None or record is None:
                continue
            r = health["results"]
            rows.append(
                {
                    "language": language,
                    "task": task,
                    "student": model,
                    "parameters": record["student_parameters"],
                    "vocabulary": (record.get("vocab_reduce") or {}).get("vocab_size", {}).get("after"),
                    "steps": record["steps"],
                    "wall_seconds": record["wall_seconds"],
                    "languages": record.get("languages"),
                    "probe": probe(r[model]),
                    "collapse": r[model].get("collapse_last"),
                    "cka": r[model].get("cka"),
                    "teacher_probe": probe(r["teacher"]),
                    "init_probe": probe(r["initialisation"]),
                }
            )
    return rows


def amp_students(runs: Path) -> dict:
    """The README job's student with 1000 VocabAmp pieces against the one without (layerwise/base), and the
    words per second of both on the same sentences (benchmarks/tokenisation_speed.py)."""
    rows = []
    for name in ("base", "amp"):
        record = load(runs / "beyond" / "layerwise" / name / "distillation.json")
        if record is None:
            continue
        e = last_eval(record)
        rows.append(
            {
                "run": name,
                "parameters": record["student_parameters"],
                "steps": record["steps"],
                "wall_seconds": record["wall_seconds"],
                "tokens_seen": record.get("tokens_seen"),
                "collapse": e.get("collapse"),
                "cka": e.get("cka"),
                "neighbours": e.get("neighbours"),
                "probe_ner_macro_f1": e.get("probe"),
                "vocab_amp": record.get("vocab_amp"),
            }
        )
    return {"students": rows, "speed": load(runs / "beyond" / "amp-speed.json")}


def amp(runs: Path) -> list[dict]:
    rows = []
    for name in ("e5-sw", "e5-sl", "e5-hi", "pre-vr-sw", "pre-vr-sl"):
        r = load(runs / "amp" / f"{name}.json")
        if r is None:
            continue
        rows.append(
            {
                "model": name,
                "vocab_before": r["vocab_size"]["before"],
                "vocab_after": r["vocab_size"]["after"],
                "tokens_per_word_before": r["tokens_per_word"]["before"],
                "tokens_per_word_after": r["tokens_per_word"]["after"],
                "seconds": r["seconds"],
                "examples": [e["piece"] for e in r["examples"][:6]],
            }
        )
    return rows


def f(x, nd=3):
    return "" if x is None else f"{x:.{nd}f}"


def collect(runs: Path) -> dict:
    """Every section's rows from the runs' records (a section whose runs are missing is empty)."""
    return {
        "layerwise": layerwise(runs),
        "languages": languages(runs),
        "vocab_amp": amp(runs),
        "amp_students": amp_students(runs),
    }


def report(data: dict) -> list[str]:
    """report.md's lines: one table per section that has rows."""
    lines = [
        "# Beyond the paper: layer-wise terms, a student of two languages, VocabAmp",
        "",
        "Generated by `python -m analysis.beyond_the_paper` from the runs of `commands.txt`; numbers are the "
        "runs' own records.",
        "",
    ]
    if data["layerwise"]:
        lines += [
            "## Layer-wise terms (README main job: Swahili, 40 updates of 64 sentences, e5-small, pre-VR)",
            "",
            "| run | weights | collapse | CKA | neighbours | NER probe (macro-F1) | term: first -> last eval |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in data["layerwise"]:
            w = ", ".join(f"{k} {v:g}" for k, v in r["loss_weights"].items() if v)
            term = f"{f(r['term_first'], 4)} -> {f(r['term_last'], 4)}" if r["term_first"] is not None else ""
            lines.append(
                f"| {r['run']} | {w} | {f(r['collapse'])} | {f(r['cka'])} | {f(r['neighbours'])} | "
                f"{f(r['probe_ner_macro_f1'])} | {term} |"
            )
        r0 = data["layerwise"][0]
        lines += [
            "",
            f"Teacher's probe {f(r0['teacher_probe'])}, initialisation's {f(r0['init_probe'])} (the same "
            "held-out 10% of MasakhaNER test).",
            "",
        ]
    if data["languages"]:
        steps = data["languages"][0]["steps"]
        lines += [
            f"## Swahili + Slovene student against the monolingual ones ({steps} updates of 64 sentences each)",
            "",
            "Frozen-feature probes on each language's held-out task sentences (`eliquare health`, the same "
            "settings for every student): Swahili NER macro-F1 (MasakhaNER test), Slovene UPOS accuracy (SSJ "
            "test); teacher and initialisation in the student's vocabulary. The sw+sl student sampled each "
            "language half the time, so it saw each language half as much as the monolingual students.",
            "",
            "| language | student | vocabulary | parameters | probe | teacher | initialisation | collapse | CKA |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in data["languages"]:
            lines.append(
                f"| {r['language']} ({r['task']}) | {r['student']} | {r['vocabulary'] or ''} | "
                f"{r['parameters']:,} | {f(r['probe'])} | {f(r['teacher_probe'])} | {f(r['init_probe'])} | "
                f"{f(r['collapse'])} | {f(r['cka'])} |"
            )
        lines.append("")
    if data["vocab_amp"]:
        lines += [
            "## VocabAmp: tokens per word (20,000 sentences of each corpus, 1000 pieces added)",
            "",
            "| model | vocabulary | tokens per word | first pieces added |",
            "|---|---|---|---|",
        ]
        for r in data["vocab_amp"]:
            lines.append(
                f"| {r['model']} | {r['vocab_before']:,} -> {r['vocab_after']:,} | "
                f"{r['tokens_per_word_before']:.3f} -> {r['tokens_per_word_after']:.3f} "
                f"({100 * (r['tokens_per_word_after'] / r['tokens_per_word_before'] - 1):+.1f}%) | "
                f"{' '.join(r['examples'])} |"
            )
        lines.append("")
    a = data["amp_students"]
    if a["students"]:
        lines += [
            "## VocabAmp students (README main job: Swahili, 40 updates of 64 sentences, pre-VR, e5-small)",
            "",
            "| run | parameters | NER probe (macro-F1) | collapse | CKA | neighbours | distillation s / update |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in a["students"]:
            lines.append(
                f"| {r['run']} | {r['parameters']:,} | {f(r['probe_ner_macro_f1'])} | {f(r['collapse'])} | "
                f"{f(r['cka'])} | {f(r['neighbours'])} | {r['wall_seconds'] / r['steps']:.1f} |"
            )
        if a["speed"]:
            sp = a["speed"]
            lines += [
                "",
                f"Inference on {sp['sentences']} MasakhaNER test sentences ({sp['words']:,} words), each "
                "model with its own tokenizer, batches of 32 padded to their longest, side by side in one run "
                "(`benchmarks/tokenisation_speed.py`):",
                "",
                "| model | tokens / word | words / s | throughput |",
                "|---|---|---|---|",
            ]
            for r in sp["rows"]:
                lines.append(
                    f"| {r['model']} | {r['tokens_per_word']:.3f} | {r['words_per_second']:.0f} | "
                    f"{r['throughput_ratio']:.2f}x |"
                )
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--runs", default=str(ROOT / "runs"), help="holds beyond/ and amp/, the runs' records")
    ap.add_argument("--out", default=str(ROOT / "results" / "beyond-the-paper"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    data = collect(Path(args.runs))
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", data)
    print(write_markdown(out / "report.md", report(data)), end="")


if __name__ == "__main__":
    main()
