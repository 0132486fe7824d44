"""Rebuild BENCHMARKS.md: the newest table of each benchmark, with its command, machine and date.

Each script in ``benchmarks/`` records its table in ``benchmarks/latest/<title>.md`` (and appends it to
``benchmarks/log.md``) when it runs; this puts the newest ones together. ``--run`` reruns scripts first, each with
the command of its own newest table (or the script alone); ``--from-log`` takes the newest table of each title from
the log (what a log written before ``latest/`` existed holds).

    .venv/bin/python benchmarks/regenerate.py                       # from benchmarks/latest
    .venv/bin/python benchmarks/regenerate.py --run distill_speed   # rerun one script, then rebuild
    .venv/bin/python benchmarks/regenerate.py --run all             # every script (hours on 2 cores)
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

SCRIPTS = sorted(
    p.stem
    for p in Path(__file__).resolve().parent.glob("*.py")
    if not p.stem.startswith("_") and p.stem != "regenerate"
)


def sections(log: str) -> list[str]:
    """The log's tables, each from its ``## `` heading to the next."""
    parts = re.split(r"(?m)^(?=## )", log)
    return [p.strip() + "\n" for p in parts if p.startswith("## ")]


def newest_from_log(log_path: Path = C.LOG_MD, latest: Path = C.LATEST) -> int:
    """Write the newest table of each title in the log to ``latest``; returns how many titles."""
    newest = {}
    for text in sections(log_path.read_text(encoding="utf-8")):
        title = text.splitlines()[0][3:]
        if not title.startswith("Notes on"):  # remarks on the tables around them: they stay in the log
            newest[C.slug(title)] = text  # later ones replace earlier ones
    latest.mkdir(parents=True, exist_ok=True)
    for name, text in newest.items():
        (latest / f"{name}.md").write_text(text, encoding="utf-8")
    return len(newest)


def recorded_command(script: str, latest: Path = C.LATEST) -> list[str]:
    """The command of the script's newest table (its options), else the script alone."""
    for f in sorted(latest.glob("*.md"), key=lambda f: f.stat().st_mtime, reverse=True):
        match = re.search(
            r"^`(\.venv/bin/python benchmarks/" + re.escape(script) + r"\.py[^`]*)`",
            f.read_text(encoding="utf-8"),
            re.M,
        )
        if match:
            return shlex.split(match.group(1))[1:]
    return [f"benchmarks/{script}.py"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", nargs="+", metavar="SCRIPT", choices=[*SCRIPTS, "all"], help="scripts to rerun first")
    p.add_argument("--from-log", action="store_true", help="take the newest table of each title from the log")
    args = p.parse_args(argv)
    if args.from_log:
        print(f"{newest_from_log()} benchmarks taken from {C.LOG_MD.relative_to(C.ROOT)}", file=sys.stderr)
    for script in SCRIPTS if args.run == ["all"] else args.run or []:
        command = [sys.executable, *recorded_command(script)]
        print("running " + shlex.join(command), file=sys.stderr, flush=True)
        if subprocess.run(command, cwd=C.ROOT).returncode:
            print(f"error: {script} failed; BENCHMARKS.md keeps its previous table", file=sys.stderr)
    C.write_index()
    print(f"wrote {C.BENCHMARKS_MD.relative_to(C.ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
