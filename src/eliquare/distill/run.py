"""``eliquare distill``: teacher + corpus -> student directory. Checks every input before anything slow, loads the
teacher, reduces its vocabulary (pre) or amplifies the student's (VocabAmp), prepares the corpus, settles the plan
(``eliquare.distill.plan``), builds the student, trains it with the Trainer made in
``eliquare.distill.trainer_setup`` in its run directory (``eliquare.distill.rundir``) and writes the best
checkpoint, its tokenizer, ``distillation.json`` and the model card to ``--out`` (``eliquare.distill.student_dir``).
This module is the order of those steps, top to bottom."""

from __future__ import annotations

import copy
import math
import sys
import time
from pathlib import Path

from transformers import TrainerCallback, TrainingArguments, set_seed

from eliquare.config import DistillConfig, check_max_length
from eliquare.corpus import expand_paths, prepare_corpus
from eliquare.corpus.languages import (
    by_language,
    corpus_paths,
    parse_weights,
    prepare_languages,
)
from eliquare.distill.checkpoints import ResumePoint, resume_point
from eliquare.distill.plan import Plan, plan_run, resolve_objective, wants_teacher_cache
from eliquare.distill.rundir import (
    RunDirectory,
    _vocab_selection,
    check_checkpoint_shape,
    check_output_dir,
    check_resume_settings,
    derived_settings,
    run_settings,
)
from eliquare.distill.student import (
    build_student,
    check_layer_map,
    freeze_position_embeddings,
    select_layers,
)
from eliquare.distill.student_dir import run_record, save_student, write_record
from eliquare.distill.trainer_setup import (
    distillation_trainer,
    health_monitor,
    teacher_cache,
    training_arguments,
    training_datasets,
)
from eliquare.errors import EliquareError
from eliquare.hub import check_push, push
from eliquare.models import (
    count_parameters,
    length_limit,
    use_eager_attention,
)
from eliquare.teachers import load_teacher
from eliquare.training import resolve_bf16
from eliquare.vocab import (
    reduce_on_corpus,
    retokenisation_notice,
)


def distill(cfg: DistillConfig, callbacks: list[TrainerCallback] | None = None) -> Path:
    """Run the whole distillation stage; returns the student directory.

    ``callbacks`` are extra ``transformers.TrainerCallback`` objects (logging to your tracker, say).
    """
    run, resume_from, settings, languages = check_inputs(cfg)
    args = training_arguments(cfg, run.work_checkpoints)
    is_main = args.process_index == 0
    log = main_process_log(is_main)
    for notice in resume_from.notices() if resume_from else ():
        log(notice)
    started = time.time()
    teacher, reduction = reduced_teacher(cfg, log)
    embedding = resolve_objective(cfg, teacher, log)
    assert not isinstance(cfg.student_layers, str)  # a count or None: __post_init__ moves a list to layer_map
    layers = select_layers(teacher.model.config.num_hidden_layers, cfg.student_layers, cfg.layer_map)
    amplification, cross, tokenizer, source = amplified_vocabulary(cfg, teacher)
    with args.main_process_first(desc="preparing the corpus"):
        data = prepare_data(cfg, languages, tokenizer, log)
    plan = plan_run(cfg, teacher, layers, len(data.train), args.world_size, log, embedding, cross)
    bf16, use_cache, datasets = configure_training(cfg, args, plan, data, log)
    student = make_student(cfg, teacher, source, layers, plan, embedding)
    check_student_settings(cfg, run, settings, resume_from, teacher, layers, student)
    health = health_monitor(cfg, teacher, student, data, log, tokenizer, source)
    log(
        f"teacher: {cfg.teacher} ({count_parameters(teacher.model):,} parameters, "
        f"{teacher.model.config.num_hidden_layers} layers); student: {count_parameters(student):,} parameters, "
        f"layers {[i + 1 for i in layers]} of the teacher"
    )
    trainer = distillation_trainer(
        cfg, args, teacher, student, data, plan, health, callbacks, tokenizer, datasets=datasets, bf16=bf16
    )
    with args.main_process_first(desc="making the run directory"):
        if is_main:  # every input has been checked: only now is anything written
            run.begin(settings)
            if resume_from:
                resume_from.remove_skipped()
    try:
        if use_cache:
            trainer.teacher_cache = teacher_cache(cfg, run, args, settings, teacher.model, data, bf16, log)
        train_result = trainer.train(resume_from_checkpoint=str(resume_from.path) if resume_from else None)
        reduction = save_student(
            cfg, run.work, trainer, teacher, student, reduction, is_main, log, plan.embedding, amplification
        )
        if is_main:
            record = run_record(
                cfg, teacher, student, layers, plan, data, trainer, train_result, reduction, health, started
            )
            write_record(cfg, run, record, trainer, teacher, student, bf16)
    except BaseException:
        if is_main:
            run.abandon()
        raise
    if is_main:
        run.finish()
    log(f"student written to {run.out} (best validation distillation loss {trainer.state.best_metric:.4f})")
    if cfg.push_to_hub and is_main:
        push(run.out, cfg.push_to_hub, private=cfg.hub_private, log=log)
    return run.out


def check_inputs(cfg: DistillConfig) -> tuple[RunDirectory, ResumePoint | None, dict, tuple]:
    """Every check the options alone allow, before anything slow starts: the output directory, the checkpoint a
    ``--resume`` continues from (complete checkpoints only), the hub repository, the corpus files, ``--layer-map``
    (the teacher's depth is checked once it is loaded), the language weights, the probe file and the settings a
    ``--resume`` must match. Returns the run directory, the resume point, the run's settings and (languages,
    weights)."""
    run = check_output_dir(cfg)
    resume_from = resume_point(run.checkpoints) if cfg.resume else None
    if cfg.push_to_hub:
        check_push(cfg.push_to_hub)
    expand_paths(corpus_paths(cfg.corpus))
    assert not isinstance(cfg.student_layers, str)  # a count or None: __post_init__ moves a list to layer_map
    check_layer_map(cfg.layer_map, cfg.student_layers)
    languages = by_language(cfg.corpus)
    weights = parse_weights(cfg.language_weights, list(languages or ()))
    if cfg.probe and not Path(cfg.probe).is_file():
        raise EliquareError(f"--probe {cfg.probe} is not a file; give a POS or NER file (CoNLL-U, BIO)")
    settings = run_settings(cfg)
    if cfg.resume:
        check_resume_settings(run.checkpoints, settings)
    return run, resume_from, settings, (languages, weights)


def check_student_settings(
    cfg: DistillConfig, run: RunDirectory, settings: dict, resume_from, teacher, layers, student
) -> None:
    """Add to ``settings`` what only the loaded teacher and the built student tell (``derived_settings``); a
    ``--resume`` checks them against its run and the checkpoint's weights against the student's shapes."""
    settings.update(derived_settings(teacher, layers))
    if cfg.resume:
        check_resume_settings(run.checkpoints, settings)
        check_checkpoint_shape(resume_from.path, student)


def main_process_log(is_main: bool):
    """A ``log(message)`` that writes to stderr in the main process only."""

    def log(message: str) -> None:
        if is_main:
            print(message, file=sys.stderr, flush=True)

    return log


def reduced_teacher(cfg: DistillConfig, log):
    """The teacher, its vocabulary reduced in place with ``--vocab-reduce pre`` (Section 5 before distillation: the
    student inherits the smaller vocabulary); returns the teacher and the reduction (None without one)."""
    teacher = load_teacher(cfg.teacher)
    # the student is built from the teacher's layers and position embeddings: the teacher's limit is its limit too
    check_max_length(cfg.max_length, length_limit(teacher.model.config, teacher.tokenizer), f"teacher {cfg.teacher}")
    reduction = None
    if cfg.vocab_reduce == "pre":
        reduction = reduce_on_corpus(
            teacher.model, teacher.tokenizer, cfg.corpus, cfg.corpus_options, **_vocab_selection(cfg)
        )
        teacher.tokenizer = reduction.tokenizer  # teacher.model was reduced in place
        if (notice := retokenisation_notice(reduction.report)) is not None:  # before the hours of distillation
            log(notice)
    return teacher, reduction


def amplified_vocabulary(cfg: DistillConfig, teacher):
    """With ``--vocab-amp`` (VocabAmp: the student reads an amplified vocabulary, the teacher its own): the
    amplification, the alignment of the two tokenisations, the student's tokenizer and the model the student is cut
    from. Without it: no amplification, no alignment, the teacher's tokenizer and model."""
    if not cfg.vocab_amp:
        return None, None, teacher.tokenizer, teacher.model
    from eliquare.corpus import iter_sentences
    from eliquare.vocab.amp import CrossTokenisation, amplify_vocabulary

    amplification = amplify_vocabulary(
        copy.deepcopy(teacher.model),
        teacher.tokenizer,
        iter_sentences(corpus_paths(cfg.corpus), cfg.corpus_options),
        add=cfg.vocab_amp,
        trained_size=cfg.vocab_amp_trained_size,
        seed=cfg.seed,
    )
    cross = CrossTokenisation.of(
        amplification, len(teacher.tokenizer), length_limit(teacher.model.config, teacher.tokenizer)
    )
    return amplification, cross, amplification.tokenizer, amplification.model


def prepare_data(cfg: DistillConfig, languages: tuple, tokenizer, log):
    """The corpus as token ids, split into training and validation: one language, or several (``LANG=PATH``) mixed
    by their weights. ``languages`` is ``(by_language, weights)`` from ``check_inputs``."""
    by_lang, weights = languages
    prepare = dict(
        max_length=cfg.max_length, validation_fraction=cfg.validation_fraction, cache_dir=cfg.cache_dir, log=log
    )
    if by_lang:
        return prepare_languages(by_lang, tokenizer, cfg.corpus_options, weights=weights, seed=cfg.seed, **prepare)
    return prepare_corpus(cfg.corpus, tokenizer, cfg.corpus_options, **prepare)


def configure_training(cfg: DistillConfig, args: TrainingArguments, plan: Plan, data, log):
    """Precision, the teacher cache's use, the datasets the Trainer reads, and the plan's learning rate and warm-up
    set on ``args``; returns (bf16, use_cache, (train, validation))."""
    bf16 = resolve_bf16(cfg.bf16, cfg.use_cpu)
    use_cache = wants_teacher_cache(cfg, plan, len(data.train), args.world_size)
    datasets = training_datasets(data, cfg.pack, rows=use_cache)
    log(
        f"precision: {'bf16 autocast (fp32 weights and losses)' if bf16 else 'fp32'}; batches: "
        + ("of sentences of similar length" if cfg.pack else "in random order, padded to their longest")
        + f"; teacher cache: {'on (the teacher reads each unmasked sentence once)' if use_cache else 'off'}"
    )
    args.learning_rate = plan.recipe.learning_rate
    args.warmup_steps = math.ceil(cfg.warmup_ratio * plan.total_steps)
    return bf16, use_cache, datasets


def make_student(cfg: DistillConfig, teacher, source, layers: list[int], plan: Plan, embedding):
    """The student cut from ``source``'s ``layers`` (Section 3), with the teacher's sentence pooling for the
    embedding objective, eager attention where the attention term needs probabilities, and frozen position
    embeddings where asked."""
    # the student's fresh weights (an MLM head a headless teacher lacks) are drawn from --seed alone, not from whatever
    # the steps before drew: a corpus read from the cache instead of tokenised, or a run earlier in the same process,
    # gave the same settings another student
    set_seed(cfg.seed)
    student = build_student(source, layers, copy_head=teacher.has_mlm_head)
    # the teacher's pooling (and dense layers), frozen for it, a trainable copy for the student
    if embedding is not None:
        from eliquare.embedding import SentencePooler

        teacher.model.sentence_pooler = SentencePooler(embedding)
        student.sentence_pooler = SentencePooler(embedding)
    if plan.weights.attn:  # attention probabilities come from the eager implementation only
        use_eager_attention(student)
        use_eager_attention(teacher.model)
    if cfg.freeze_position_embeddings:
        freeze_position_embeddings(student)
    return student
