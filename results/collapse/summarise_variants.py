"""The 40-step variant table (results/collapse/variants.sh) from each student's distillation.json."""

import json
import sys
from pathlib import Path

runs = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/runs")
names = sys.argv[2:]
rows, refs = [], None
for name in names:
    record = json.loads((runs / name / "distillation.json").read_text())
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
