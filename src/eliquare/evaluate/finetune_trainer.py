"""The transformers ``Trainer`` as `eliquare finetune` drives it: the paper's schedule (linear decay after 500
warm-up steps), a dev evaluation every epoch, the weights of the best one kept, and the test split predicted.

``Scorer`` turns the Trainer's argmax predictions back into one label per example (per word for token tasks) and
scores them; ``train_keeping_best`` and ``predict_test`` are the two halves of one seed's run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

from eliquare.errors import notice
from eliquare.evaluate.metrics import MAIN_METRIC, task_scores
from eliquare.tasks.files import TaskData
from eliquare.training import resolve_bf16, trainer_arguments


class Features:
    """A list of feature dicts as a map-style dataset."""

    def __init__(self, features):
        self.features = features

    def __len__(self):
        return len(self.features)

    def __getitem__(self, i):
        return self.features[i]


class Scorer:
    """Turns the Trainer's (argmax predictions, label ids) back into per-example labels and scores them."""

    def __init__(self, task: str, labels: Sequence[str]):
        self.task = task
        self.labels = list(labels)
        self.examples: list = []
        self.owners: list[int] = []
        self.last_predictions: list = []
        self.last_scores: dict = {}

    def use(self, examples, owners) -> None:
        self.examples, self.owners = examples, owners

    def decode(self, preds, label_ids) -> list:
        import numpy as np

        preds, label_ids = np.asarray(preds), np.asarray(label_ids)
        if self.task == "classify":
            return [self.labels[int(p)] for p in preds.reshape(-1)[: len(self.examples)]]
        out: list[list[str]] = [[] for _ in self.examples]
        for j, owner in enumerate(self.owners):
            mask = label_ids[j] != -100
            out[owner].extend(self.labels[int(p)] for p in preds[j][mask])
        for e, p in zip(self.examples, out):
            if len(p) != len(e.words):  # cannot happen: every word has a first sub-word
                raise RuntimeError(f"{e.source}, line {e.line}: {len(p)} predictions for {len(e.words)} words")
        return out

    def gold(self) -> list:
        return [e.label for e in self.examples] if self.task == "classify" else [list(e.tags) for e in self.examples]

    def __call__(self, eval_pred) -> dict:
        preds = self.decode(eval_pred.predictions, eval_pred.label_ids)
        scores = task_scores(self.task, self.gold(), preds)
        self.last_predictions, self.last_scores = preds, scores
        flat = {k: float(v) for k, v in scores.items() if isinstance(v, (int, float))}
        flat["score"] = float(scores[MAIN_METRIC[self.task]])
        return flat


def _argmax(logits, labels):
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    return logits.argmax(dim=-1)


def _keep_best_callback(scorer: Scorer):
    from transformers import TrainerCallback

    class KeepBest(TrainerCallback):
        """Keeps (in memory, on the CPU) the weights of the evaluation with the best validation score,
        and that evaluation's full dev scores."""

        def __init__(self) -> None:
            self.best: Optional[float] = None
            self.state_dict = None
            self.metrics: dict = {}
            self.scores: dict = {}
            self.epoch = None
            self.step = None
            self.history: list[dict] = []

        def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
            if not metrics or "eval_score" not in metrics or model is None:
                return
            score = metrics["eval_score"]
            self.history.append({"step": state.global_step, "epoch": state.epoch, "score": score})
            if self.best is None or score > self.best:
                self.best = score
                self.state_dict = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                self.metrics = dict(metrics)
                self.scores = dict(scorer.last_scores)  # compute_metrics ran just before this event
                self.epoch, self.step = state.epoch, state.global_step

    return KeepBest()


def _eval_steps(cfg, n_features: int) -> int:
    """Steps between dev evaluations: one epoch (or the whole run when shorter)."""
    steps_per_epoch = max(1, math.ceil(n_features / cfg.batch_size))
    total = cfg.max_steps if cfg.max_steps > 0 else max(1, math.ceil(cfg.epochs * steps_per_epoch))
    if cfg.warmup_steps >= total / 2:
        notice(
            f"warm-up ({cfg.warmup_steps} steps) covers {min(cfg.warmup_steps / total, 1):.0%} of the {total} "
            "training steps, so the learning rate stays below its peak for most of training; give "
            "--warmup-steps to change it"
        )
    return min(steps_per_epoch, total)


def _training_arguments(cfg, work: Path, eval_steps: int, seed: int):
    """The paper's schedule (linear decay after warm-up), a dev evaluation every ``eval_steps``, no checkpoints."""
    return trainer_arguments(
        work,
        seed=seed,
        use_cpu=cfg.use_cpu,
        bf16=resolve_bf16(cfg.bf16, cfg.use_cpu),
        group_by_length=cfg.group_by_length,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps > 0 else -1,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
        eval_steps=eval_steps,
        save_strategy="no",
        logging_strategy="steps",
        logging_steps=cfg.logging_steps or max(1, min(50, eval_steps)),
        dataloader_num_workers=0,
        disable_tqdm=not cfg.progress,
        # the Trainer drops every feature the model's forward does not take before collating; the teacher's soft
        # targets (task distillation) are such features, read by the loss
        remove_unused_columns=not cfg.soft_teacher,
    )


def _trainer_class(trainer_cls):
    """``Trainer`` that evaluates and predicts in the dataset's order: transformers 5.x also sorts evaluation
    batches by length under ``group_by_length``, and the scorer aligns predictions with examples by position."""
    import torch

    class OrderedEvaluationTrainer(trainer_cls):
        def _get_eval_sampler(self, eval_dataset):
            return None if eval_dataset is None else torch.utils.data.SequentialSampler(eval_dataset)

    return OrderedEvaluationTrainer


def train_keeping_best(cfg, data: TaskData, model, tokenizer, feats: dict, work: Path, seed: int):
    """Train, scoring the dev split every epoch; ``model`` ends with the weights of the best evaluation.

    Returns ``(trainer, scorer, keep, train_seconds)``; ``keep`` holds the best evaluation's dev scores.
    """
    from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding, Trainer

    train_ds, dev_ds = Features(feats["train"][0]), Features(feats["dev"][0])
    collator: Callable[[list[dict]], dict] = (
        DataCollatorWithPadding(tokenizer) if cfg.task == "classify" else DataCollatorForTokenClassification(tokenizer)
    )
    trainer_cls = _trainer_class(Trainer)
    if cfg.soft_teacher:  # task distillation: the teacher's logits ride in the training features
        from eliquare.evaluate.soft_targets import SoftTargetCollator, soft_target_trainer

        collator = SoftTargetCollator(collator, cfg.task, tokenizer.padding_side)
        trainer_cls = soft_target_trainer(trainer_cls, cfg.soft_weight, cfg.soft_temperature)
    scorer = Scorer(cfg.task, data.labels)
    scorer.use(data.dev, feats["dev"][1])
    keep = _keep_best_callback(scorer)
    args = _training_arguments(cfg, work, _eval_steps(cfg, len(train_ds)), seed)
    trainer = trainer_cls(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=train_ds,
        eval_dataset=dev_ds,
        processing_class=tokenizer,
        compute_metrics=scorer,
        callbacks=[keep],
        preprocess_logits_for_metrics=_argmax,
    )
    t0 = time.perf_counter()
    trainer.train()
    if keep.step != trainer.state.global_step and (
        not keep.history or keep.history[-1]["step"] != trainer.state.global_step
    ):
        trainer.evaluate()
    train_seconds = time.perf_counter() - t0
    if keep.state_dict is not None:
        model.load_state_dict(keep.state_dict)
    return trainer, scorer, keep, train_seconds


def predict_test(cfg, data: TaskData, trainer, scorer: Scorer, feats: dict) -> tuple[list, dict, float]:
    """``(predictions, test scores, seconds)`` of the trainer's model on the test split."""
    scorer.use(data.test, feats["test"][1])
    t1 = time.perf_counter()
    out = trainer.predict(Features(feats["test"][0]))
    predict_seconds = time.perf_counter() - t1
    preds = scorer.decode(out.predictions, out.label_ids)
    return preds, task_scores(cfg.task, scorer.gold(), preds), predict_seconds
