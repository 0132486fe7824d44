"""What every eliquare stage that trains with transformers' ``Trainer`` shares (distill, finetune)."""

from __future__ import annotations

from pathlib import Path


def trainer_arguments(output_dir: str | Path, *, seed: int, use_cpu: bool, bf16: bool, **fields):
    """``TrainingArguments`` with the shared settings: linear decay after warm-up, evaluation every
    ``eval_steps``, a seeded data order, no external reporting, memory pinned only on a GPU; ``fields`` are
    the stage's own (and may override these)."""
    import torch
    from transformers import TrainingArguments

    cpu = use_cpu or not torch.cuda.is_available()
    shared = dict(output_dir=str(output_dir), lr_scheduler_type="linear", eval_strategy="steps", report_to="none",
                  seed=seed, data_seed=seed, use_cpu=use_cpu, bf16=bf16, dataloader_pin_memory=not cpu)
    return TrainingArguments(**{**shared, **fields})
