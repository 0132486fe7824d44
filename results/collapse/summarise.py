"""Issue 10's table from what results/collapse/run.sh wrote: health (health-*.json) and fine-tuned scores."""

import json
import sys
from pathlib import Path

runs = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/collapse")
here = Path(__file__).parent


def finetuned(name: str) -> str:
    path = runs / "ft" / name / "metrics.json"
    if not path.is_file():
        return ""
    m = json.loads(path.read_text())
    return f"{m['metric']} {m['score']:.4f}"


print("| language | model | collapse (last layer) | pooled collapse | CKA with teacher | top-5 neighbour overlap | "
      "probes | fine-tuned |")
print("|---|---|---|---|---|---|---|---|")
for lang, key in (("sw", "sw-ner"), ("sl", "sl-pos")):
    path = here / f"health-{lang}.json"
    if not path.is_file():
        continue
    results = json.loads(path.read_text())["results"]
    for model, row in results.items():
        probes = ", ".join(f"{k[6:]} {v:.3f}" for k, v in row.items() if k.startswith("probe:"))
        ft = {"initialisation": finetuned(f"{key}-init"), "one-pass": finetuned(f"{key}-pass"),
              "half-pass": finetuned(f"{key}-pass")}.get(model, "")
        print(f"| {lang} | {model} | {row['collapse_last']:.3f} | {row['pooled_collapse']:.3f} | "
              f"{row.get('cka', 1.0):.3f} | {row.get('neighbours', 1.0):.3f} | {probes} | "
              f"{ft} |")
