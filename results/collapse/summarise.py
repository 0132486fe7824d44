"""Issue 10's table and report from what results/collapse/run.sh wrote: health-*.json and fine-tuned scores.

Writes results/collapse/table.md and report.md (report.template.md with the tables, and findings.md, filled in).
"""

import json
import sys
from pathlib import Path

runs = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/collapse")
here = Path(__file__).parent
FINETUNED = {"sw": "sw-ner", "sl": "sl-pos"}  # the fine-tuned task of each language


def finetuned(name: str) -> str:
    path = runs / "ft" / name / "metrics.json"
    if not path.is_file():
        return ""
    m = json.loads(path.read_text())
    return f"{m['task']} {m['metric']} {m['score']:.4f}"


lines = ["| language | model | collapse (last layer) | pooled collapse | CKA with teacher | top-5 neighbour overlap | "
         "probes | fine-tuned |", "|---|---|---|---|---|---|---|---|"]
for lang, task in FINETUNED.items():
    path = here / f"health-{lang}.json"
    if not path.is_file():
        continue
    for model, row in json.loads(path.read_text())["results"].items():
        probes = ", ".join(f"{k[6:]} {v:.3f}" for k, v in row.items() if k.startswith("probe:"))
        ft = finetuned(f"{task}-init") if model == "initialisation" else \
            finetuned(f"{task}-pass") if model in ("one-pass", "half-pass") else ""
        lines.append(f"| {lang} | {model} | {row['collapse_last']:.3f} | {row['pooled_collapse']:.3f} | "
                     f"{row.get('cka', 1.0):.3f} | {row.get('neighbours', 1.0):.3f} | {probes} | {ft} |")
table = "\n".join(lines)
(here / "table.md").write_text(table + "\n")
findings = (here / "findings.md").read_text().strip() if (here / "findings.md").is_file() else ""
report = (here / "report.template.md").read_text() \
    .replace("{{variants}}", (here / "variants-40-steps.md").read_text().strip()) \
    .replace("{{table}}", table).replace("{{findings}}", findings)
(here / "report.md").write_text(report)
print(table)
