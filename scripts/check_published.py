"""Check a student directory as the issue "Ready to ship" asks: only the published files, all 0644, no pickle
(by content: pickle protocol or torch zip), and a model card whose numbers are those of distillation.json.
Usage: python scripts/check_published.py DIR   (exit 1 with the failures listed)."""

import json
import os
import sys
from pathlib import Path

from eliquare.card import _front_matter
from eliquare.publish import published_files

directory = Path(sys.argv[1])
failures = []
published = sorted(str(p.relative_to(directory)) for p in published_files(directory))
names = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
if names != published:
    failures.append(f"files not published: {sorted(set(names) - set(published))}")
for name in names:  # the sentence-transformers module directories of an embedding student are published too
    path = directory / name
    if os.stat(path).st_mode & 0o777 != 0o644:
        failures.append(f"{name} has mode {oct(os.stat(path).st_mode & 0o777)}")
    head = path.read_bytes()[:2]
    if head[:1] == b"\x80" or (head == b"PK" and not name.endswith(".model")):
        failures.append(f"{name} looks like a pickle / torch.save file")
record = json.loads((directory / "distillation.json").read_text())
card = (directory / "README.md").read_text()
meta = _front_matter(card)
for what, text in [
    ("data fingerprint", record["data_fingerprint"]),
    ("student parameters", f"{record['student_parameters'] / 1e6:.1f} M"),
    ("sentences", f"{record['corpus_stats']['sentences']:,} clean sentences"),
    *[(f"validation step {r['step']}", f"| {r['step']} | {r['eval_loss']:.4f} |") for r in record["validation"]],
    *[(f"throughput {k}", f"{v:.1f}") for k, v in record["inference"]["sequences_per_second"].items()],
]:
    if text not in card:
        failures.append(f"model card lacks the {what} of distillation.json ({text})")
for key in ("license", "base_model", "tags"):
    if key not in meta:
        failures.append(f"model card front matter lacks {key}")
print(
    "\n".join(failures)
    or f"{directory}: {len(names)} files, all published, 0644, no pickle; card matches distillation.json"
)
sys.exit(1 if failures else 0)
