"""The pieces the Trainer of one distillation run is made of: its ``TrainingArguments``, the training and
validation sets it reads, the masking (and prompt) collator, the health monitor measured at every evaluation, the
teacher cache, and the ``DistillationTrainer`` with its callbacks. The run itself (``eliquare.distill.run``) decides
when each is made."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import TrainingArguments
from transformers.trainer_callback import ProgressCallback

from eliquare.config import DistillConfig
from eliquare.corpus import expand_paths
from eliquare.corpus.languages import corpus_paths
from eliquare.distill.checkpoints import CompleteCheckpoints
from eliquare.distill.health import HealthMonitor, HealthSample, ProbeSet
from eliquare.distill.masking import MaskingCollator, collator_for
from eliquare.distill.plan import Plan
from eliquare.distill.recipe import PAPER_LEARNING_RATE
from eliquare.distill.rundir import RunDirectory
from eliquare.distill.teacher_cache import CACHE_DIR_NAME, TeacherCache
from eliquare.distill.trainer import (
    DistillationTrainer,
    DistillProgress,
    EpochCheckpoints,
    TimeBudget,
)
from eliquare.models import length_limit
from eliquare.training import trainer_arguments

if TYPE_CHECKING:
    from eliquare.embedding import PromptCollator


def training_arguments(cfg: DistillConfig, checkpoints: Path) -> TrainingArguments:
    every = cfg.eval_steps or 10**9  # no step-based evaluation unless asked; epochs are handled by a callback
    cpu = cfg.use_cpu or not torch.cuda.is_available()
    return trainer_arguments(
        checkpoints,
        seed=cfg.seed,
        use_cpu=cfg.use_cpu,
        bf16=False,  # the trainer's own autocast (DistillationTrainer)
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation,
        learning_rate=PAPER_LEARNING_RATE,  # the recipe's, set once the teacher is loaded (run.configure_training)
        adam_epsilon=cfg.adam_epsilon,
        weight_decay=cfg.weight_decay,
        warmup_steps=0,  # cfg.warmup_ratio of the steps, set once the corpus is known (run.configure_training)
        max_grad_norm=cfg.max_grad_norm,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        save_strategy="steps",
        eval_steps=every,
        save_steps=every,
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=True,
        metric_for_best_model="loss",
        greater_is_better=False,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        dataloader_num_workers=cfg.dataloader_workers,
        train_sampling_strategy="group_by_length" if cfg.pack else "random",
        length_column_name="length",
        remove_unused_columns=False,
        label_names=["labels"],
        include_num_input_tokens_seen="non_padding",
        ddp_backend="gloo" if cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        disable_tqdm=False,
        eval_on_start=not cfg.resume,  # the validation loss before training, for the record
    )


def health_monitor(
    cfg: DistillConfig, teacher, student, data, log, tokenizer=None, reference=None
) -> HealthMonitor | None:
    """Teacher and initialisation measured once, on the first validation sentences (and the probe file).

    ``tokenizer`` and ``reference``: the student's vocabulary and the teacher in it (with --vocab-amp, the teacher
    with the amplified vocabulary, its new rows as initialised)."""
    if not cfg.health_sentences:
        return None
    tokenizer = tokenizer or teacher.tokenizer
    rows = data.validation.select(range(min(cfg.health_sentences, len(data.validation))))["input_ids"]
    sample = HealthSample.from_ids(rows, tokenizer.pad_token_id, tokenizer.all_special_ids)
    probe = ProbeSet.from_file(cfg.probe, tokenizer, cfg.probe_task, cfg.max_length) if cfg.probe else None
    monitor = HealthMonitor(reference if reference is not None else teacher.model, student, sample, probe)
    t, i = monitor.teacher, monitor.initial
    log(
        f"health: last-layer pairwise cosine teacher {t.last:.3f}, initialisation {i.last:.3f} (a student above "
        f"{max(t.last, i.last) + 0.1:.3f} is collapsing); initialisation CKA {i.cka:.3f}, neighbours {i.neighbours:.3f}"
        + (f", probe teacher {t.probe:.3f} initialisation {i.probe:.3f}" if probe else "")
    )
    return monitor


def training_datasets(data, pack: bool, rows: bool):
    """The training and validation sets the Trainer reads: with ``rows``, each sentence's index (its place in the
    teacher cache); with ``pack``, the validation sentences sorted by length (training batches are grouped by the
    Trainer's length-grouped sampler), so that few positions are padding."""
    train, validation = data.train, data.validation
    if rows:
        train = train.add_column("row", list(range(len(train))))
        validation = validation.add_column("row", list(range(len(validation))))
    if pack and "length" in validation.column_names:
        validation = validation.sort("length")
    return train, validation


def teacher_cache(
    cfg: DistillConfig, run: RunDirectory, args: TrainingArguments, settings: dict, teacher, data, bf16: bool, log
) -> TeacherCache | None:
    """The run's teacher cache, in its checkpoint directory: opened if one made from the same inputs is there (a
    --resume), else computed (main process; the others wait and open it)."""
    directory = run.work_checkpoints / CACHE_DIR_NAME
    key = {
        "teacher": settings["teacher"],
        "corpus": data.fingerprint,
        "vocabulary_size": settings["vocabulary_size"],
        "teacher_layers": teacher.config.num_hidden_layers,
        "bf16": bf16,
    }
    with args.main_process_first(desc="the teacher's states"):
        cache = TeacherCache.open(directory, key)
        if cache is None and args.process_index == 0:
            log(f"teacher cache: the teacher reads the {len(data.train) + len(data.validation):,} sentences once")
            cache = TeacherCache.build(
                directory, key, teacher, {"train": data.train, "validation": data.validation}, bf16=bf16, log=log
            )
            corpus_mb = sum(p.stat().st_size for p in expand_paths(corpus_paths(cfg.corpus))) / 1e6
            cache.meta["corpus_megabytes"] = round(corpus_mb, 2)
            log(
                f"teacher cache: {cache.megabytes:,.0f} MB in {cache.meta['seconds']:.0f} s"
                + (
                    f" ({cache.megabytes / corpus_mb:.0f} MB and {cache.meta['seconds'] / corpus_mb:.0f} s per MB of "
                    "corpus files)"
                    if corpus_mb
                    else ""
                )
            )
        elif cache is not None:
            log(f"teacher cache: reusing {directory} ({cache.megabytes:,.0f} MB)")
    return cache if cache is not None else TeacherCache.open(directory, key)


def distillation_trainer(
    cfg: DistillConfig,
    args: TrainingArguments,
    teacher,
    student,
    data,
    plan: Plan,
    health: HealthMonitor | None,
    callbacks,
    tokenizer=None,
    datasets=None,
    bf16: bool = False,
) -> DistillationTrainer:
    tokenizer = tokenizer or teacher.tokenizer  # the student's (with --vocab-amp, not the teacher's)
    collator: MaskingCollator | PromptCollator = collator_for(
        tokenizer,
        data.token_counts,
        mlm_probability=cfg.mlm_probability,
        mask_replace=cfg.mask_replace,
        random_replace=cfg.random_replace,
        smoothing=cfg.mlm_smoothing,
        seed=cfg.seed,
    )
    if plan.embedding is not None:
        from eliquare.embedding import PromptCollator

        collator = PromptCollator.for_tokenizer(
            collator,
            tokenizer,
            plan.embedding,
            cfg.prompts,
            masked=bool(plan.weights.mlm or plan.weights.ce),
            max_length=length_limit(teacher.model.config, tokenizer),
        )
    train_set, validation_set = datasets or (data.train, data.validation)
    trainer = DistillationTrainer(
        model=student,
        args=args,
        train_dataset=train_set,
        eval_dataset=validation_set,
        data_collator=collator,
        processing_class=tokenizer,
        teacher=teacher.model,
        objective=plan.objective,
        head_warmup_steps=plan.head_warmup_steps,
        health=health,
        stop_on_collapse=cfg.stop_on_collapse,
        bf16=bf16,
        callbacks=[EpochCheckpoints(), CompleteCheckpoints(), *(callbacks or [])],
    )
    if cfg.max_minutes:
        trainer.add_callback(TimeBudget(cfg.max_minutes))
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(DistillProgress())
    return trainer
