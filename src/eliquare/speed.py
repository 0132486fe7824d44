"""Inference speed measured side by side: models run in interleaved rounds on the same random batch, the median
of each kept, so that a ratio between them holds on a busy machine too. Used by ``distill`` (the model card's
throughput beside the teacher's) and ``benchmarks/export.py``; tests never assert a timing. ``machine`` says what a
timing (or a score: kernels differ from one CPU to another in their last bits) was measured on."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path


def machine() -> str:
    """This machine in one line: CPU model, logical CPUs, torch and its threads and kernels, the GPU if any."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = (
        f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__} with {torch.get_num_threads()} "
        f"threads ({torch.backends.cpu.get_cpu_capability()})"
    )
    if torch.cuda.is_available():
        text += f"; GPU {torch.cuda.get_device_name()}"
    return text


def interleaved_seconds(runs: dict[str, Callable[[], object]], rounds: int = 3, warmup: int = 1) -> dict[str, float]:
    """Median wall seconds of each callable over ``rounds`` rounds, one call of each per round."""
    for _ in range(warmup):
        for run in runs.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}


def encoder_throughput(models: dict, vocab_size: int, *, batch: int = 8, length: int = 128, rounds: int = 3) -> dict:
    """Sequences per second of each model's forward pass on ``batch`` x ``length`` random tokens (CPU, eval)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, max(vocab_size, 6), (batch, length), generator=generator)

    def forward(model):
        device = next(model.parameters()).device
        x = ids.to(device)
        mask = torch.ones_like(x)

        def run():
            with torch.inference_mode():
                model(input_ids=x, attention_mask=mask)
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        return run

    training = {name: m.training for name, m in models.items()}
    for model in models.values():
        model.eval()
    try:
        seconds = interleaved_seconds({name: forward(m) for name, m in models.items()}, rounds=rounds)
    finally:
        for name, model in models.items():
            model.train(training[name])
    return {
        "batch": batch,
        "length": length,
        "rounds": rounds,
        "threads": torch.get_num_threads(),
        "device": str(next(iter(models.values())).parameters().__next__().device),
        "sequences_per_second": {name: round(batch / s, 2) for name, s in seconds.items()},
    }


def student_and_teacher(teacher, student, vocab_size: int) -> dict:
    """The model card's throughput: the encoders of teacher and student, side by side (``encoder_throughput``), on
    128 tokens or the models' position limit if that is shorter."""
    from eliquare.models import encoder_of, length_limit

    vocab_size = min(vocab_size, teacher.config.vocab_size, student.config.vocab_size)  # ids both know (VR post)
    length = min(128, length_limit(teacher.config, None), length_limit(student.config, None))
    return encoder_throughput(
        {"teacher": encoder_of(teacher), "student": encoder_of(student)}, vocab_size, length=length
    )
