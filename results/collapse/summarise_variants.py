"""The 40-step variant table (results/collapse/variants.sh) from each student's distillation.json."""

import json
import sys
from pathlib import Path

runs = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/runs")
names = sys.argv[2:]
rows, refs = [], None
for item in names:  # NAME (a directory in RUNS) or NAME=PATH
    name, _, path = item.partition("=")
    record = json.loads((Path(path) if path else runs / name).joinpath("distillation.json").read_text())
    refs = record["health"]
    last = record["validation"][-1]
    rows.append({"variant": name, "recipe": record.get("recipe") or {  # runs made before recipes existed ran the paper's
                     "name": "paper", "hidden_loss": "cosine", "learning_rate": 5e-4, "head_warmup": 0.0}, "alpha_mlm": record["loss_weights"]["mlm"],
                 "steps": record["steps"], "collapse": round(last["eval_collapse"], 4),
                 "cka": round(last["eval_cka"], 4), "neighbours": round(last["eval_neighbours"], 4),
                 "probe": round(last["eval_probe"], 4), "mlm_accuracy": round(last.get("eval_mlm_accuracy", 0), 4),
                 "collapse_layers": last["eval_collapse_layers"], "wall_seconds": record["wall_seconds"]})
json.dump({"references": refs, "variants": rows}, sys.stdout, indent=2)
print()

# and the same as a Markdown table, on stderr (results/collapse/variants-40-steps.md)
ref = refs or {}
lines = ["| variant | hidden term | lr | MLM reaches encoder | alpha_mlm | collapse (last) | CKA | neighbours | "
         "NER probe |", "|---|---|---|---|---|---|---|---|---|"]
for name, key in (("teacher", "teacher"), ("initialisation", "initialisation")):
    r = ref.get(key, {})
    lines.append(f"| {name} | | | | | {r.get('collapse_last', 0):.3f} | {r.get('cka', 1.0):.3f} | "
                 f"{r.get('neighbours', 1.0):.3f} | {r.get('probe', 0):.3f} |")
for v in rows:
    rec = v["recipe"]
    reaches = "never" if rec["head_warmup"] >= 1 or v["alpha_mlm"] == 0 else (
        f"after {rec['head_warmup']:.0%}" if rec["head_warmup"] else "from step 0")
    lines.append(f"| {v['variant']} | {rec['hidden_loss']} | {rec['learning_rate']:.0e} | {reaches} | "
                 f"{v['alpha_mlm']:g} | {v['collapse']:.3f} | {v['cka']:.3f} | {v['neighbours']:.3f} | "
                 f"{v['probe']:.3f} |")
print("\n".join(lines), file=sys.stderr)
