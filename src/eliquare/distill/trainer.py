"""The training loop: transformers' Trainer with the distillation loss (``eliquare.distill.objective``), the
validation loss as the same weighted loss on the same masks at every evaluation (masks are seeded by batch content,
``eliquare.distill.masking``), the student's health at each evaluation, and epoch checkpoints, a time budget and
progress lines as callbacks."""

from __future__ import annotations

import sys
import time
from collections import defaultdict

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import ProgressCallback

from eliquare.distill.checkpoints import (
    NoStepPastTheEnd,
)
from eliquare.distill.health import HealthMonitor
from eliquare.distill.losses import (
    TERMS,
    LossWeights,
    Objective,
)
from eliquare.distill.objective import distillation_losses
from eliquare.distill.teacher_cache import (
    TeacherCache,
)
from eliquare.models import (
    use_masked_lm_forward,
)
from eliquare.training import autocast


class DistillationTrainer(NoStepPastTheEnd, Trainer):
    """Trainer whose loss is the distillation objective; the teacher rides along, frozen."""

    def __init__(
        self,
        *args,
        teacher,
        objective: Objective,
        head_warmup_steps: int = 0,
        health: HealthMonitor | None = None,
        stop_on_collapse: bool = False,
        bf16: bool = False,
        teacher_cache: TeacherCache | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.bf16 = bf16  # autocast of both forward passes; the losses cast to fp32 (eliquare.distill.losses)
        self.teacher_cache = teacher_cache
        self.positions = {"real": 0, "all": 0}  # training positions, for the padding share
        self.teacher = teacher.to(self.args.device).eval()
        self.teacher.requires_grad_(False)
        self.objective: Objective = objective
        self.head_warmup_steps = head_warmup_steps  # steps in which a fresh head's MLM gradient stays in the head
        self.health = health
        self.stop_on_collapse = stop_on_collapse
        use_masked_lm_forward(self.model)
        self.loss_is_scaled_for_ga = False  # our loss is a per-batch mean: let the Trainer divide by GA
        self._parts_sum: dict[str, float] = defaultdict(float)
        self._parts_n = 0
        self._tokens_at_log = 0
        self._time_at_log: float | None = None
        self._eval_seconds = 0.0  # evaluation time since the last log, left out of tokens/s

    @property
    def weights(self) -> LossWeights:
        return self.objective.weights

    def with_teacher_states(self, batch: dict, split: str) -> dict:
        """The batch with the teacher's cached states of its sentences (when the run has a teacher cache)."""
        rows = batch.pop("rows", None)
        if self.teacher_cache is not None and rows is not None:
            batch["teacher_hidden"] = self.teacher_cache.split(split).gather(
                rows, batch["input_ids"].shape[1], batch["input_ids"].device
            )
        return batch

    def losses(self, model, batch: dict, split: str, **kwargs) -> dict:
        batch = self.with_teacher_states(batch, split)
        with autocast(self.bf16, self.args.device):
            return distillation_losses(model, self.teacher, batch, self.objective, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        head_only = model.training and self.state.global_step < self.head_warmup_steps
        if model.training:
            mask = inputs["attention_mask"]
            self.positions["real"] += int(mask.sum())
            self.positions["all"] += mask.numel()
        parts = self.losses(model, inputs, "train", head_only=head_only)
        loss = self.weights.combine(parts)
        if model.training:
            for name, value in parts.items():
                self._parts_sum[name] += float(value.detach())
            self._parts_n += 1
        return (loss, parts) if return_outputs else loss

    def log(self, logs: dict, start_time: float | None = None) -> None:
        if "loss" in logs and self._parts_n:
            for name, total in self._parts_sum.items():
                logs[f"loss_{name}"] = round(total / self._parts_n, 5)
            self._parts_sum.clear()
            self._parts_n = 0
            now, tokens = time.perf_counter(), self.state.num_input_tokens_seen
            training_seconds = now - (self._time_at_log or now) - self._eval_seconds
            if self._time_at_log is not None and training_seconds > 0:
                logs["tokens_per_second"] = round((tokens - self._tokens_at_log) / training_seconds, 1)
            if self.positions["all"]:
                logs["padding_share"] = round(self.padding_share, 4)
            self._time_at_log, self._tokens_at_log, self._eval_seconds = now, tokens, 0.0
        super().log(logs, start_time)

    @property
    def padding_share(self) -> float:
        """Share of the training positions so far that were padding."""
        return 1.0 - self.positions["real"] / max(self.positions["all"], 1)

    @torch.no_grad()
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict:
        """Validation distillation loss (and its terms); the masks are the same at every evaluation."""
        started = time.perf_counter()
        dataloader = self.get_eval_dataloader(eval_dataset)
        model = self.model
        assert model is not None  # the Trainer was built with the student
        was_training = model.training
        model.eval()
        names = ("loss", *TERMS)
        sums = torch.zeros(len(names) + 3, dtype=torch.float64, device=self.args.device)
        with torch.random.fork_rng(devices=[]):  # evaluation must not move the training RNG
            for batch in dataloader:
                batch = self._prepare_inputs(batch)
                stats: dict = {}
                parts = self.losses(model, batch, "validation", stats=stats)
                sums[-3] += stats.get("correct", 0)
                sums[-2] += stats.get("masked", 0)
                parts["loss"] = self.weights.combine(parts)
                for i, name in enumerate(names):
                    if name in parts:
                        sums[i] += float(parts[name])
                sums[-1] += 1
        sums = self.accelerator.reduce(sums, reduction="sum")
        n = max(float(sums[-1]), 1.0)
        metrics: dict[str, float | list[float] | None] = {
            f"{metric_key_prefix}_{name}": float(sums[i]) / n
            for i, name in enumerate(names)
            if name == "loss" or getattr(self.weights, name)
        }
        if float(sums[-2]):
            metrics[f"{metric_key_prefix}_mlm_accuracy"] = float(sums[-3]) / float(sums[-2])
        if self.health is not None:  # the student itself, not only its loss
            health = self.health.measure(model)
            metrics[f"{metric_key_prefix}_collapse"] = health.last
            metrics[f"{metric_key_prefix}_cka"] = health.cka
            metrics[f"{metric_key_prefix}_neighbours"] = health.neighbours
            if health.probe is not None:
                metrics[f"{metric_key_prefix}_probe"] = health.probe
            metrics[f"{metric_key_prefix}_collapse_layers"] = [round(c, 4) for c in health.collapse]
            collapsing = self.health.is_collapsing(health)
            if collapsing and self.is_world_process_zero():
                print(self.health.warning(health), file=sys.stderr, flush=True)
            if collapsing and self.stop_on_collapse:
                print(f"stopping at step {self.state.global_step}: --stop-on-collapse", file=sys.stderr, flush=True)
                self.control.should_training_stop = True
        if was_training:
            model.train()
        self._eval_seconds += time.perf_counter() - started
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


class EpochCheckpoints(TrainerCallback):
    """Evaluate and checkpoint at the end of every epoch, on top of every N steps (paper: each epoch)."""

    def __init__(self) -> None:
        self.last_evaluated = -1

    def on_evaluate(self, args, state, control, **kwargs):
        self.last_evaluated = state.global_step

    def on_epoch_end(self, args, state, control, **kwargs):
        if state.global_step != self.last_evaluated:
            control.should_evaluate = True
            control.should_save = True
        return control


class TimeBudget(TrainerCallback):
    """Stop cleanly once the wall-clock budget is spent: the step's evaluation and checkpoint still happen."""

    def __init__(self, minutes: float) -> None:
        self.seconds = minutes * 60
        self.started = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        spent = self.started is not None and time.perf_counter() - self.started >= self.seconds
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([float(spent)], device=args.device)  # all processes stop at the same step
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            spent = bool(flag.item())
        if spent:
            control.should_training_stop = True
            control.should_evaluate = True
            control.should_save = True
        return control


class DistillProgress(ProgressCallback):
    """The progress bar shows loss and tokens/s (ETA is tqdm's); evaluations print one line each."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or self.training_bar is None or not logs:
            return
        if "eval_loss" in logs:
            terms = " ".join(
                f"{k[5:]}={v:.4f}" for k, v in logs.items() if k.startswith("eval_") and isinstance(v, float)
            )
            if "eval_collapse" in logs:
                self._collapse = f"{logs['eval_collapse']:.3f}"
            self.training_bar.write(
                f"step {state.global_step} (epoch {state.epoch or 0:.2f}) validation: {terms}", file=sys.stderr
            )
        elif "loss" in logs:
            postfix = {"loss": f"{logs['loss']:.4f}"}
            if "tokens_per_second" in logs:
                postfix["tok/s"] = f"{logs['tokens_per_second']:.0f}"
            if getattr(self, "_collapse", None):
                postfix["collapse"] = self._collapse  # the last evaluation's last-layer pairwise cosine
            self.training_bar.set_postfix(postfix, refresh=True)
