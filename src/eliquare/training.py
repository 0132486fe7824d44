"""What every eliquare stage that trains with transformers' ``Trainer`` shares (distill, finetune)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path


def trainer_arguments(
    output_dir: str | Path, *, seed: int, use_cpu: bool, bf16: bool, group_by_length: bool = False, **fields
):
    """``TrainingArguments`` with the shared settings: linear decay after warm-up, evaluation every
    ``eval_steps``, a seeded data order, no external reporting, memory pinned only on a GPU, the CPU named
    explicitly where there is no GPU (transformers refuses bf16 without a GPU unless ``use_cpu`` is set);
    ``fields`` are the stage's own (and may override these). ``group_by_length`` batches examples of similar length
    together,
    in either transformers' spelling (5.x: ``train_sampling_strategy``; 4.x: ``group_by_length``)."""
    import dataclasses

    import torch
    from transformers import TrainingArguments

    cpu = use_cpu or not torch.cuda.is_available()
    shared = dict(
        output_dir=str(output_dir),
        lr_scheduler_type="linear",
        eval_strategy="steps",
        report_to="none",
        seed=seed,
        data_seed=seed,
        use_cpu=cpu,
        bf16=bf16,
        dataloader_pin_memory=not cpu,
    )
    if group_by_length:
        names = {f.name for f in dataclasses.fields(TrainingArguments)}
        shared.update(
            {"train_sampling_strategy": "group_by_length"}
            if "train_sampling_strategy" in names
            else {"group_by_length": True}
        )
    return TrainingArguments(**{**shared, **fields})


def bf16_available(use_cpu: bool = False) -> bool:
    """Whether bf16 arithmetic is fast here: a GPU with bf16 support, or (on the CPU) a processor with bf16 matmul
    instructions (AVX512-BF16 or AMX), on which oneDNN runs a bf16 matmul several times faster than fp32."""
    import torch

    if not use_cpu and torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = next(
            (line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), ""
        ).split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_bf16(requested: bool | None, use_cpu: bool = False) -> bool:
    """``--bf16/--no-bf16`` as given, or (not given) on wherever ``bf16_available``."""
    return bf16_available(use_cpu) if requested is None else bool(requested)


def autocast(enabled: bool, device) -> AbstractContextManager:
    """bf16 autocast on ``device`` (master weights stay fp32; each loss casts its inputs to fp32), or nothing."""
    import contextlib

    import torch

    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=getattr(device, "type", str(device)), dtype=torch.bfloat16)
