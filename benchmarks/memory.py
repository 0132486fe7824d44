"""Peak memory (RSS) of the distillation step, a short distillation run, and corpus preparation.

Every measurement runs in a fresh subprocess, so peaks do not mix; the parent samples the child's
resident set size with psutil every 20 ms and the child reports its own high-water mark
(``ru_maxrss``) at the end; the larger of the two is the peak. "anonymous" is RSS minus the
file-backed part (psutil's ``shared``): memory the process itself allocated, as opposed to pages
of memory-mapped files (Arrow datasets are memory-mapped) that the kernel can drop at any time.

- step: one variant's distillation step (see ``distill_throughput.py``: (a) reference, (b)
  eliquare, (c) eliquare after VocabReduce), two steps after building the models; "models" is the
  RSS once teacher, student, optimizer and batch exist, so peak - models is the step's own memory.
- distill: ``eliquare.distill.distill`` with a tiny teacher on a generated corpus, a few steps.
- corpus: ``eliquare.corpus.prepare_corpus`` over generated random-word text of 100 MB, 300 MB and
  1 GB (``--max-gb`` stops earlier; below 0.1 the three sizes are scaled down), written to a
  temporary directory and deleted afterwards. Peak RSS must stay flat as the corpus grows.

    .venv/bin/python benchmarks/memory.py                     # e5-small steps, distill, corpus to 100 MB
    .venv/bin/python benchmarks/memory.py --max-gb 1          # corpus up to 1 GB (tens of minutes here)
    .venv/bin/python benchmarks/memory.py --shapes e5-small mbert --parts step
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

CORPUS_GB = (0.1, 0.3, 1.0)
SHARD_MB = 50  # the corpus is written in shards, so each size is the first few shards of the next one


# ---------------------------------------------------------------------------------------------
# children: each measures one thing and prints a JSON line last


def _rss() -> int:
    return psutil.Process().memory_info().rss


def child_step(spec: dict) -> dict:
    import distill_throughput as T
    import torch

    shape = C.SHAPES[spec["shape"]]
    setups, _ = T.prepare(shape, spec["batch"], spec["seq"], spec["variant"], spec["device"])
    step = T.make_step(*setups[spec["variant"]], spec["variant"], spec["device"], spec["bf16"])
    step()  # the first step creates the optimizer state: count it as part of the models
    models = _rss()
    for _ in range(spec["steps"] - 1):
        step()
    out = {"models": models}
    if spec["device"].startswith("cuda"):
        out["cuda_peak"] = torch.cuda.max_memory_allocated()
    return out


def child_distill(spec: dict) -> dict:
    sys.path.insert(0, str(C.ROOT / "tests"))
    import tiny

    from eliquare.config import DistillConfig
    from eliquare.distill import distill

    work = Path(spec["dir"])
    teacher = tiny.build_tiny_bert(work / "teacher")
    corpus = tiny.write_corpus(work / "corpus.txt", n=spec["sentences"])
    distill(
        DistillConfig(
            teacher=str(teacher),
            corpus=[str(corpus)],
            out=str(work / "student"),
            cache_dir=str(work / "cache"),
            student_layers=2,
            batch_size=16,
            gradient_accumulation=1,
            max_steps=spec["steps"],
            eval_steps=spec["steps"],
            use_cpu=True,
        )
    )
    return {}


def child_corpus(spec: dict) -> dict:
    from transformers import AutoTokenizer

    from eliquare.corpus import prepare_corpus

    tokenizer = AutoTokenizer.from_pretrained(spec["tokenizer"])
    started = time.perf_counter()
    data = prepare_corpus(spec["files"], tokenizer, cache_dir=spec["cache"], log=lambda m: None)
    return {"seconds": time.perf_counter() - started, "sentences": data.stats.train + data.stats.validation}


CHILDREN = {"step": child_step, "distill": child_distill, "corpus": child_corpus}


def run_child(spec: dict, interval: float = 0.02) -> dict:
    """Run one measurement in a fresh interpreter; returns its report with peak and baseline RSS."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(C.ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    # the child's output goes to files: a full pipe would block it while we only sample its memory
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", json.dumps(spec)], stdout=stdout, stderr=stderr, text=True, env=env
        )
        ps = psutil.Process(proc.pid)
        peak = peak_anon = 0
        while proc.poll() is None:
            try:
                rss = shared = 0
                for p in [ps, *ps.children(recursive=True)]:
                    info = p.memory_info()
                    rss, shared = rss + info.rss, shared + info.shared
                peak, peak_anon = max(peak, rss), max(peak_anon, rss - shared)
            except psutil.Error:
                pass
            time.sleep(interval)
        stdout.seek(0)
        stderr.seek(0)
        out, err = stdout.read(), stderr.read()
    if proc.returncode != 0:
        raise RuntimeError(f"measurement {spec} failed:\n{err[-3000:]}")
    report = json.loads(out.strip().splitlines()[-1])
    report["peak"] = max(peak, report.pop("maxrss"))
    report["peak_anonymous"] = peak_anon
    return report


def child_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    import torch  # noqa: F401  (imports count towards the baseline, as they do for a user)
    import transformers  # noqa: F401

    baseline = _rss()
    out = CHILDREN[spec["kind"]](spec)
    out["baseline"] = baseline
    out["maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(json.dumps(out))
    return 0


# ---------------------------------------------------------------------------------------------
# the generated corpus


def write_corpus_shards(directory: Path, total_mb: float, shard_mb: float, seed: int = 0) -> list[Path]:
    """Random-word paragraphs (1-4 sentences of 4-20 Zipf-distributed words a line) in files of ``shard_mb``."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(50_000)]
    weights = [1.0 / (i + 1) for i in range(len(words))]  # Zipf-like, as word frequencies are
    cum = list(itertools.accumulate(weights))
    directory.mkdir(parents=True, exist_ok=True)
    shards, written, target = [], 0, int(total_mb * 1e6)
    while written < target:
        path = directory / f"shard-{len(shards):04d}.txt"
        size = min(int(shard_mb * 1e6), target - written)
        with open(path, "w", encoding="utf-8") as fh:
            n = 0
            while n < size:
                lines = []
                for _ in range(100):
                    sentences = [
                        " ".join(rng.choices(words, cum_weights=cum, k=rng.randint(4, 20))).capitalize() + "."
                        for _ in range(rng.randint(1, 4))
                    ]
                    lines.append(" ".join(sentences))
                chunk = "\n".join(lines) + "\n"
                fh.write(chunk)
                n += len(chunk.encode())
        written += path.stat().st_size
        shards.append(path)
    return shards


def corpus_sizes(max_gb: float) -> list[float]:
    if max_gb >= CORPUS_GB[0]:
        return [gb for gb in CORPUS_GB if gb <= max_gb + 1e-9]
    return [max_gb * gb / CORPUS_GB[-1] for gb in CORPUS_GB]  # the same 1 : 3 : 10 ladder, scaled down


# ---------------------------------------------------------------------------------------------


def measure(
    parts=("step", "distill", "corpus"),
    shapes=("e5-small",),
    variants="abc",
    batch: int | None = None,
    seq: int = 128,
    max_gb: float = 0.1,
    steps: int = 2,
    distill_steps: int = 4,
    device: str = "cpu",
    bf16: bool = False,
    log=None,
) -> list[dict]:
    """One row per measurement: what, peak RSS, anonymous peak, baseline (after imports)."""
    import distill_throughput as T

    log = log or (lambda m: None)
    rows = []
    if "step" in parts:
        for name in shapes:
            b = batch or (T.CPU_BATCH[name] if not device.startswith("cuda") else 32)
            for v in variants:
                log(f"step {name} {v}")
                r = run_child(
                    {
                        "kind": "step",
                        "shape": name,
                        "variant": v,
                        "batch": b,
                        "seq": seq,
                        "steps": steps,
                        "device": device,
                        "bf16": bf16,
                    }
                )
                rows.append({"part": "step", "what": f"{name} {T.VARIANTS[v]}, batch {b} x {seq}", **r})
    with tempfile.TemporaryDirectory(prefix="eliquare-memory-") as tmp:
        tmp = Path(tmp)
        if "distill" in parts:
            log("distill")
            r = run_child({"kind": "distill", "dir": str(tmp / "distill"), "steps": distill_steps, "sentences": 2000})
            rows.append(
                {
                    "part": "distill",
                    "what": f"eliquare distill, tiny BERT teacher, {distill_steps} steps of 16 sentences",
                    **r,
                }
            )
        if "corpus" in parts:
            sys.path.insert(0, str(C.ROOT / "tests"))
            import tiny

            tokenizer = tiny.build_tiny_bert(tmp / "tokenizer")
            sizes = corpus_sizes(max_gb)
            log(f"writing a {sizes[-1]:.2f} GB corpus")
            shards = write_corpus_shards(tmp / "corpus", sizes[-1] * 1000, min(SHARD_MB, sizes[0] * 1000 / 2))
            for gb in sizes:
                files, total = [], 0
                for s in shards:  # the first shards up to this size
                    if total >= gb * 1e9 * 0.999:
                        break
                    files.append(str(s))
                    total += s.stat().st_size
                log(f"corpus {total / 1e6:.0f} MB")
                r = run_child(
                    {"kind": "corpus", "files": files, "tokenizer": str(tokenizer), "cache": str(tmp / "cache")}
                )
                shutil.rmtree(tmp / "cache", ignore_errors=True)
                rows.append(
                    {
                        "part": "corpus",
                        "what": f"prepare_corpus, {total / 1e6:,.0f} MB of text "
                        f"({r['sentences']:,} sentences, {r['seconds']:.0f} s)",
                        "bytes": total,
                        **r,
                    }
                )
    return rows


def format_rows(rows: list[dict]) -> str:
    mb = lambda b: f"{b / 2**20:,.0f} MiB"  # noqa: E731
    gpu = any("cuda_peak" in r for r in rows)
    return C.table(
        ["measurement", "peak RSS", "peak anonymous", "after imports", "models built", "peak - models"]
        + (["GPU peak allocated"] if gpu else []),
        [
            [
                r["what"],
                mb(r["peak"]),
                mb(r["peak_anonymous"]),
                mb(r["baseline"]),
                mb(r["models"]) if "models" in r else "-",
                mb(r["peak"] - r["models"]) if "models" in r else "-",
            ]
            + ([mb(r["cuda_peak"]) if "cuda_peak" in r else "-"] if gpu else [])
            for r in rows
        ],
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--parts", nargs="+", default=["step", "distill", "corpus"], choices=["step", "distill", "corpus"])
    p.add_argument("--shapes", nargs="+", default=["e5-small"], choices=sorted(C.SHAPES))
    p.add_argument("--variants", default="abc")
    p.add_argument("--batch", type=int, help="default: as distill_throughput.py")
    p.add_argument("--seq", type=int, default=128)
    p.add_argument(
        "--max-gb",
        type=float,
        default=0.1,
        help="largest generated corpus in GB (sizes 0.1, 0.3, 1 up to it; default 0.1)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--no-append", action="store_true", help="print only; do not append to BENCHMARKS.md")
    args = p.parse_args(argv)
    if args.child:
        return child_main(args.child)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    rows = measure(
        args.parts,
        args.shapes,
        args.variants,
        args.batch,
        args.seq,
        args.max_gb,
        device=args.device,
        bf16=args.bf16,
        log=log,
    )
    notes = [
        "Each row is a fresh process; peak RSS = max(psutil samples every 20 ms, ru_maxrss); anonymous = RSS "
        "minus file-backed pages (psutil `shared`), sampled; after imports = RSS once torch and transformers "
        "are imported."
    ]
    corpus = [r for r in rows if r["part"] == "corpus"]
    if len(corpus) > 1:
        a, b = corpus[0], corpus[-1]
        notes.append(
            f"Corpus preparation: {b['bytes'] / a['bytes']:.0f}x the text, peak RSS x "
            f"{b['peak'] / a['peak']:.2f}, anonymous x {b['peak_anonymous'] / a['peak_anonymous']:.2f}."
        )
    C.report(
        "Peak memory (benchmarks/memory.py)",
        format_rows(rows) + "\n\n" + "\n".join(f"- {n}" for n in notes),
        append=not args.no_append,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
