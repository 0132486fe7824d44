"""The 40-step variant table of results/collapse (results/collapse/variants.sh) from each student's distillation.json.

    .venv/bin/python -m analysis.collapse_variants RUNS NAME ... [NAME=PATH ...] \
        > results/collapse/variants-40-steps.json 2> results/collapse/variants-40-steps.md

Each variant is NAME (the directory RUNS/NAME) or NAME=PATH; results/collapse/variants-commands.txt names them.
Writes JSON (the teacher's and initialisation's health, then one row per variant at its last evaluation) on stdout
and the same as a Markdown table on stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from analysis.common import parser, read_json

# a record without a recipe was distilled with the paper's setting
PAPER_RECIPE = {"name": "paper", "hidden_loss": "cosine", "learning_rate": 5e-4, "head_warmup": 0.0}


def variant_row(name: str, record: dict) -> dict:
    """One variant's row: its recipe and its health at the last evaluation (to 4 decimals)."""
    last = record["validation"][-1]
    return {
        "variant": name,
        "recipe": record.get("recipe") or PAPER_RECIPE,
        "alpha_mlm": record["loss_weights"]["mlm"],
        "steps": record["steps"],
        "collapse": round(last["eval_collapse"], 4),
        "cka": round(last["eval_cka"], 4),
        "neighbours": round(last["eval_neighbours"], 4),
        "probe": round(last["eval_probe"], 4),
        "mlm_accuracy": round(last.get("eval_mlm_accuracy", 0), 4),
        "collapse_layers": last["eval_collapse_layers"],
        "wall_seconds": record["wall_seconds"],
    }


def markdown(refs: dict | None, rows: list[dict]) -> list[str]:
    """The table's lines: the teacher and the initialisation (the last variant's references), then the variants."""
    ref = refs or {}
    lines = [
        "| variant | hidden term | lr | MLM reaches encoder | alpha_mlm | collapse (last) | CKA | neighbours | "
        "NER probe |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, key in (("teacher", "teacher"), ("initialisation", "initialisation")):
        r = ref.get(key, {})
        lines.append(
            f"| {name} | | | | | {r.get('collapse_last', 0):.3f} | {r.get('cka', 1.0):.3f} | "
            f"{r.get('neighbours', 1.0):.3f} | {r.get('probe', 0):.3f} |"
        )
    for v in rows:
        rec = v["recipe"]
        reaches = (
            "never"
            if rec["head_warmup"] >= 1 or v["alpha_mlm"] == 0
            else (f"after {rec['head_warmup']:.0%}" if rec["head_warmup"] else "from step 0")
        )
        lines.append(
            f"| {v['variant']} | {rec['hidden_loss']} | {rec['learning_rate']:.0e} | {reaches} | "
            f"{v['alpha_mlm']:g} | {v['collapse']:.3f} | {v['cka']:.3f} | {v['neighbours']:.3f} | "
            f"{v['probe']:.3f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("runs", nargs="?", default="/tmp/runs", help="where the variants' directories are")
    ap.add_argument("variants", nargs="*", help="NAME (the directory RUNS/NAME) or NAME=PATH")
    args = ap.parse_args(argv)
    rows, refs = [], None
    for item in args.variants:
        name, _, path = item.partition("=")
        record = read_json((Path(path) if path else Path(args.runs) / name) / "distillation.json")
        refs = record["health"]
        rows.append(variant_row(name, record))
    print(json.dumps({"references": refs, "variants": rows}, indent=2))
    print("\n".join(markdown(refs, rows)), file=sys.stderr)


if __name__ == "__main__":
    main()
