"""Distillation throughput: one training step, three ways, on the same teacher, student, batch and data.

(a) reference: the DistilBERT scripts' step. Teacher and student both compute vocabulary logits at
    every position over the full vocabulary (``model(...).logits``); the soft-target loss is
    gathered at the masked positions afterwards and the MLM loss is a cross-entropy over all
    positions with ignored labels (DistilBERT's ``lm_loss_fct``).
(b) eliquare: ``eliquare.distill.distillation_losses`` with the student's forward ``eliquare.models.masked_lm_logits``
    installed, as ``DistillationTrainer`` runs it: the projection only at the masked positions,
    the teacher under ``inference_mode``.
(c) (b) after VocabReduce: teacher (and so student) cut to the vocabulary one language keeps, with
    VocabReduce's own slicing (``eliquare.vocab.slicing.slice_vocabulary``).

A step is: teacher forward, student forward and backward, gradient clipping (eliquare's default
norm 5) and a fused AdamW step (the Trainer's default optimizer). Loss weights 5/1/2 and
temperature 2 (the paper's).

Model FLOP utilisation (MFU) = the step's matmul FLOPs per second / the FLOP/s of a large
square matmul timed in the same rounds. FLOPs are counted analytically: 2 per weight per token
for a forward, 6 for forward + backward, attention score and value matmuls included, the
vocabulary projection only at the positions where the variant computes it.

    .venv/bin/python benchmarks/distill_throughput.py            # both shapes, default batches
    .venv/bin/python benchmarks/distill_throughput.py --quick    # fewer rounds, smaller batch
    .venv/bin/python benchmarks/distill_throughput.py --device cuda --bf16 --batch 32
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

from eliquare.config import DistillConfig  # noqa: E402
from eliquare.distill.losses import LossWeights, Objective, cosine_loss, soft_target_loss  # noqa: E402
from eliquare.distill.masking import IGNORE_INDEX  # noqa: E402
from eliquare.distill.objective import distillation_losses as _distillation_losses  # noqa: E402
from eliquare.distill.student import build_student, select_layers  # noqa: E402
from eliquare.models import use_masked_lm_forward  # noqa: E402

WEIGHTS = LossWeights(**DistillConfig(corpus=[], out="").loss_weights(teacher_has_head=True))  # the paper's
TEMPERATURE = DistillConfig.temperature  # the paper's
VARIANTS = {
    "a": "(a) reference: full-vocab logits everywhere",
    "b": "(b) eliquare: projection at masked positions",
    "c": "(c) (b) + VocabReduce",
}
# Batch per shape on a CPU, where (a) at 32 x 128 does not fit or takes too long (see the notes printed)
CPU_BATCH = {"mbert": 8, "e5-small": 8, "tiny": 4}


def distillation_losses(student, teacher, batch: dict, weights: LossWeights, temperature: float) -> dict:
    """Variant (b): eliquare's loss step on the paper's objective (plain cosine on the last layers)."""
    return _distillation_losses(student, teacher, batch, Objective(weights, temperature))


def reference_losses(student, teacher, batch: dict, weights: LossWeights, temperature: float) -> dict:
    """Variant (a): the loss step of DistilBERT's distiller.py, full vocabulary logits at every position."""
    labels = batch["labels"]
    masked = labels != IGNORE_INDEX
    s_out = type(student).forward(
        student, input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
    )
    with torch.no_grad():
        t_out = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
    s_logits, t_logits = s_out.logits, t_out.logits
    return {
        "ce": soft_target_loss(s_logits[masked], t_logits[masked], temperature),
        "cos": cosine_loss(s_out.hidden_states[-1], t_out.hidden_states[-1], batch["attention_mask"]),
        "mlm": F.cross_entropy(
            s_logits.view(-1, s_logits.size(-1)).float(), labels.view(-1), ignore_index=IGNORE_INDEX
        ),
    }


def step_flops(
    config, teacher_layers: int, student_layers: int, tokens: int, masked: int, seq: int, full_vocab: bool
) -> float:
    """Matmul FLOPs of one step: teacher forward (2 per weight per token), student forward + backward (6)."""
    h, f, v = config.hidden_size, config.intermediate_size, config.vocab_size
    layer = 2 * (4 * h * h + 2 * h * f) + 2 * 2 * seq * h  # per token: Q K V O, FFN; QK^T and AV
    head = 2 * h * h + 2 * h * v  # per projected position: the head's dense transform and the decoder
    projected = tokens if full_vocab else masked
    teacher = tokens * teacher_layers * layer + projected * head
    student = 3 * (tokens * student_layers * layer + projected * head)
    return float(teacher + student)


def make_step(student, teacher, batch: dict, optimizer, variant: str, device: str, bf16: bool):
    losses = reference_losses if variant == "a" else distillation_losses

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with C.autocast(device, bf16):
            loss = WEIGHTS.combine(losses(student, teacher, batch, WEIGHTS, TEMPERATURE))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), DistillConfig.max_grad_norm)
        optimizer.step()
        return float(loss.detach())

    return step


def prepare(shape: C.Shape, batch_size: int, seq: int, variants: str, device: str, student_layers: int | None = None):
    """Teacher, student and batch of every variant: (a) and (b) share them, (c) has the reduced pair."""
    teacher = C.build_teacher(shape)
    layers = select_layers(shape.num_hidden_layers, student_layers or shape.num_hidden_layers // 2)
    kept = C.kept_ids_for(shape)
    batch = C.masked_batch(shape, batch_size, seq, kept)
    pairs = {}
    if "c" in variants:
        pairs["c"] = (C.reduced_copy(teacher, kept), C.renumbered(batch, kept, shape.vocab_size))
    if "a" in variants or "b" in variants:
        pairs["ab"] = (teacher, batch)
    setups = {}
    for key, (t, b) in pairs.items():
        t = t.to(device).requires_grad_(False).eval()
        student = build_student(t, layers).to(device).train()
        # as DistillationTrainer does; (a) calls the class's own forward instead
        use_masked_lm_forward(student)
        optimizer = torch.optim.AdamW(
            [p for p in student.parameters() if p.requires_grad], lr=5e-4, eps=1e-6, fused=True
        )  # the Trainer's default (adamw_torch_fused)
        for v in key:
            if v in variants:
                setups[v] = (student, t, C.to_device(b, device), optimizer)
    return {v: setups[v] for v in "abc" if v in setups}, batch


def measure(
    shape: C.Shape,
    batch_size: int,
    seq: int = 128,
    rounds: int = 3,
    warmup: int = 1,
    variants: str = "abc",
    device: str = "cpu",
    bf16: bool = False,
    peak_n: int = 4096,
    student_layers: int | None = None,
    log=None,
) -> tuple[list[dict], float]:
    """Time the variants side by side; returns one row per variant and the peak matmul FLOP/s."""
    setups, batch = prepare(shape, batch_size, seq, variants, device, student_layers)
    steps = {v: make_step(*setups[v], v, device, bf16) for v in setups}
    matmul, matmul_flops = C.peak_matmul(peak_n, device, torch.bfloat16 if bf16 else torch.float32)
    times = C.interleaved({**steps, "peak": matmul}, rounds=rounds, warmup=warmup, device=device, log=log)
    peak = matmul_flops / C.median(times["peak"])
    tokens = int(batch["attention_mask"].sum())
    masked = int((batch["labels"] != IGNORE_INDEX).sum())
    rows = []
    for v in setups:
        student, teacher = setups[v][:2]
        seconds = C.median(times[v])
        flops = step_flops(
            teacher.config,
            teacher.config.num_hidden_layers,
            student.config.num_hidden_layers,
            tokens,
            masked,
            seq,
            full_vocab=(v == "a"),
        )
        rows.append(
            {
                "shape": shape.name,
                "variant": v,
                "batch": f"{batch_size} x {seq}",
                "vocab": teacher.config.vocab_size,
                "seconds": seconds,
                "tokens_per_s": tokens / seconds,
                "gflop": flops / 1e9,
                "gflops_per_s": flops / seconds / 1e9,
                "mfu": flops / seconds / peak,
                "all_seconds": times[v],
            }
        )
    base = {r["shape"]: r["tokens_per_s"] for r in rows if r["variant"] == "a"}
    for r in rows:
        r["speedup"] = r["tokens_per_s"] / base[r["shape"]] if r["shape"] in base else None
    return rows, peak


def format_rows(rows: list[dict]) -> str:
    return C.table(
        ["shape", "variant", "batch", "vocab", "s/step (median)", "tokens/s", "vs (a)", "GFLOP/step", "GFLOP/s", "MFU"],
        [
            [
                r["shape"],
                VARIANTS[r["variant"]],
                r["batch"],
                f"{r['vocab']:,}",
                f"{r['seconds']:.3f}",
                f"{r['tokens_per_s']:,.0f}",
                f"{r['speedup']:.2f}x" if r["speedup"] else "-",
                f"{r['gflop']:,.1f}",
                f"{r['gflops_per_s']:,.1f}",
                f"{r['mfu']:.1%}",
            ]
            for r in rows
        ],
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", nargs="+", default=["e5-small", "mbert"], choices=sorted(C.SHAPES))
    p.add_argument("--variants", default="abc", help="which of a, b, c to run (default: all)")
    p.add_argument("--batch", type=int, help=f"sequences per batch (default 32 on GPU, {CPU_BATCH} on CPU)")
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (median kept); each runs every variant once")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--kept", type=int, help="vocabulary size after VocabReduce for (c) (default: per shape)")
    p.add_argument("--student-layers", type=int, help="default: half the teacher's (6 of 12)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (the peak matmul is then timed in bf16)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--quick", action="store_true", help="1 timed round, batch 2: a check that it runs, minutes")
    p.add_argument("--no-append", action="store_true", help="print only; do not append to BENCHMARKS.md")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.rounds, args.batch = 1, args.batch or 2
    cpu = not args.device.startswith("cuda")
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    all_rows, peaks = [], {}
    for name in args.shapes:
        shape = C.SHAPES[name]
        if args.kept:
            shape = C.Shape(**{**shape.__dict__, "kept": args.kept})
        batch = args.batch or (CPU_BATCH[name] if cpu else 32)
        log(f"{name}: batch {batch} x {args.seq}, {args.rounds} rounds after {args.warmup} warm-up")
        rows, peaks[name] = measure(
            shape,
            batch,
            args.seq,
            args.rounds,
            args.warmup,
            args.variants,
            args.device,
            args.bf16,
            student_layers=args.student_layers,
            log=log,
        )
        all_rows += rows
    notes = [
        f"Peak matmul ({'bf16' if args.bf16 else 'fp32'} 4096 x 4096 torch.matmul, timed in the same rounds): "
        + ", ".join(f"{peaks[n] / 1e9:,.1f} GFLOP/s during {n}" for n in peaks)
        + ".",
        f"Student: {args.student_layers or 'half the'} layers of the teacher's "
        "(eliquare.distill.student.build_student, "
        "layer n <- 2n-1); loss 5 CE + 1 cos + 2 MLM, T = 2; 15% of tokens masked "
        "(eliquare.distill.masking.MaskingCollator); fused AdamW + clipping.",
        "(c): teacher rows cut with eliquare.vocab.slicing.slice_vocabulary (VocabReduce's slicing) to "
        + ", ".join(f"{C.SHAPES[n].vocab_size:,} -> {(args.kept or C.SHAPES[n].kept):,} ids ({n})" for n in args.shapes)
        + " chosen at random (the speed depends on the count, not on which ids).",
        f"Medians of {args.rounds} interleaved rounds after {args.warmup} warm-up; per-round seconds: "
        + "; ".join(f"{r['shape']} {r['variant']} " + "/".join(f"{t:.2f}" for t in r["all_seconds"]) for r in all_rows)
        + ".",
    ]
    if cpu and not args.batch:
        notes.append(
            "Batch below 32 x 128 on CPU: variant (a) holds ~5 full-vocabulary float32 logit tensors "
            "(tokens x vocab x 4 bytes each: 32 x 128 tokens are 4.1 GB for e5-small, 2.0 GB for mBERT), "
            "too much for this machine's shared memory, and minutes per step on 2 cores; the same "
            "batch is used for all three variants."
        )
    C.report(
        "Distillation throughput (benchmarks/distill_throughput.py)",
        format_rows(all_rows) + "\n\n" + "\n".join(f"- {n}" for n in notes),
        append=not args.no_append,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
