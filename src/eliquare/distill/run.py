"""``eliquare distill``: teacher + corpus -> student directory. Loads the teacher, reduces its vocabulary (pre),
prepares the corpus, settles the plan (loss weights, recipe, steps), builds the student, trains it
(``eliquare.distill.trainer``) in its run directory (``eliquare.distill.rundir``) and writes the best checkpoint,
its tokenizer, ``distillation.json`` and the model card to ``--out``."""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_callback import ProgressCallback

from eliquare import __version__
from eliquare.atomic import write_json
from eliquare.config import DistillConfig, check_max_length
from eliquare.corpus import expand_paths, prepare_corpus
from eliquare.corpus.languages import (
    by_language,
    corpus_paths,
    parse_weights,
    prepare_languages,
)
from eliquare.distill.checkpoints import (
    CompleteCheckpoints,
    resume_point,
)
from eliquare.distill.health import HealthMonitor, HealthSample, ProbeSet
from eliquare.distill.losses import (
    LossWeights,
    Objective,
)
from eliquare.distill.masking import collator_for
from eliquare.distill.recipe import PAPER_LEARNING_RATE, Recipe, resolve_recipe
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
    hidden_targets,
    relation_teacher_layer,
    select_layers,
)
from eliquare.distill.teacher_cache import (
    CACHE_DIR_NAME,
    TeacherCache,
    cache_unsupported,
)
from eliquare.distill.trainer import (
    DistillationTrainer,
    DistillProgress,
    EpochCheckpoints,
    TimeBudget,
)
from eliquare.errors import EliquareError
from eliquare.hub import check_push, push
from eliquare.models import (
    attention_projections,
    count_parameters,
    encoder_of,
    length_limit,
    projection_width,
    use_eager_attention,
)
from eliquare.publish import finish_student_dir
from eliquare.speed import machine, student_and_teacher
from eliquare.teachers import load_teacher, teacher_embedding_spec
from eliquare.training import resolve_bf16, trainer_arguments
from eliquare.vocab import (
    format_report,
    reduce_on_corpus,
    retokenisation_notice,
    save_tokenizer,
)


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
        learning_rate=PAPER_LEARNING_RATE,  # replaced by the recipe's once the teacher is loaded (see distill)
        adam_epsilon=cfg.adam_epsilon,
        weight_decay=cfg.weight_decay,
        warmup_steps=0,  # cfg.warmup_ratio of the steps, set once the corpus is known (see distill)
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


@dataclass
class Plan:
    """What a run will do, settled once the teacher and the corpus are known."""

    weights: LossWeights
    recipe: Recipe
    objective: Objective
    total_steps: int  # optimizer steps of the whole run (the Trainer's count)
    head_warmup_steps: int  # steps in which a fresh head's MLM gradient stays in the head

    @property
    def embedding(self):
        """The teacher's EmbeddingSpec for the embedding objective; None for the masked-LM objective."""
        return self.objective.embedding


def resolve_objective(cfg: DistillConfig, teacher, log):
    """The teacher's ``EmbeddingSpec`` when the run distils sentence embeddings (--objective embedding, or auto
    and the teacher has a sentence-transformers configuration), else None."""
    spec = teacher_embedding_spec(cfg.teacher, teacher)
    if cfg.objective == "masked-lm" or (cfg.objective == "auto" and spec is None):
        return None
    if spec is None:
        from eliquare.embedding import EmbeddingSpec

        spec = EmbeddingSpec(pooling="mean", normalize=True)
        log(
            f"notice: teacher {cfg.teacher} has no sentence-transformers configuration (modules.json); its sentence "
            "embedding is taken to be the mean of its last token states, L2-normalised, without prompts"
        )
    log(
        f"objective embedding: {spec.pooling} pooling"
        + (f", {len(spec.dense)} dense layer(s)" if spec.dense else "")
        + (", L2-normalised" if spec.normalize else "")
        + (
            f"; text given the prompts {' / '.join(repr(p) for p in spec.distillation_prompts(cfg.prompts))} in turn"
            if any(spec.distillation_prompts(cfg.prompts))
            else ""
        )
    )
    return spec


def optimizer_steps(cfg: DistillConfig, train_sentences: int, world_size: int) -> int:
    """Optimizer steps of the run, counted as the Trainer counts them (a partial accumulation ends an epoch)."""
    if cfg.max_steps > 0:
        return cfg.max_steps
    batches = math.ceil(train_sentences / (cfg.batch_size * world_size))
    return math.ceil(max(math.ceil(batches / cfg.gradient_accumulation), 1) * cfg.epochs)


def plan_run(
    cfg: DistillConfig,
    teacher,
    layers: list[int],
    train_sentences: int,
    world_size: int,
    log,
    embedding=None,
    cross=None,
) -> Plan:
    weights = LossWeights(**cfg.loss_weights(teacher.has_mlm_head, "embedding" if embedding else "masked-lm"))
    if not teacher.has_mlm_head and cfg.alpha_ce is None and not embedding and cfg.recipe != "minilmv2":
        log(
            f"notice: teacher {cfg.teacher} has no trained MLM head; the soft-target (CE) term is off and the "
            "student's new MLM head is trained by the MLM term (the paper's L_cos + L_mlm setting)"
        )
    recipe = resolve_recipe(
        cfg, cfg.batch_size * cfg.gradient_accumulation * world_size, fresh_head=not teacher.has_mlm_head
    )
    log(
        f"recipe {recipe.name}: "
        + (
            f"hidden-state term {recipe.hidden_loss} on {recipe.hidden_layers} layers, "
            if weights.cos
            else "no hidden-state term, "
        )
        + f"peak learning rate {recipe.learning_rate:.2e}"
        + (
            f"; the fresh MLM head trains alone (its gradient kept from the encoder) for {recipe.head_warmup:.0%} of "
            "the steps"
            if recipe.head_warmup and weights.mlm
            else ""
        )
    )
    n_teacher_layers = teacher.model.config.num_hidden_layers
    relation_layers, relation_heads = relation_plan(cfg, teacher.model, log) if weights.relation else ((-1, -1), 1)
    objective = Objective(
        weights,
        cfg.temperature,
        centre=recipe.hidden_loss == "centred-cosine",
        hidden_mse=recipe.hidden_loss == "mse",
        hidden_pairs=tuple(hidden_targets(layers, n_teacher_layers)) if recipe.hidden_layers == "mapped" else (),
        embedding=embedding,
        sentence_loss=cfg.sentence_loss,
        contrastive_temperature=cfg.contrastive_temperature,
        layer_pairs=tuple((n - 1, end - 1) for n, end in hidden_targets(layers, n_teacher_layers)),
        attention_heads=teacher.model.config.num_attention_heads,
        relation_layers=relation_layers,
        relation_heads=relation_heads,
        cross=cross,
    )
    total = optimizer_steps(cfg, train_sentences, world_size)
    head_warmup = sys.maxsize if recipe.head_warmup >= 1 else round(recipe.head_warmup * total)
    return Plan(weights, recipe, objective, total, head_warmup)


RELATION_HEADS = 48  # MiniLMv2's relation heads for base-size teachers (768 wide: 16 dimensions each)


def relation_plan(cfg: DistillConfig, teacher, log) -> tuple[tuple[int, int], int]:
    """The relation term's (student, teacher) 0-based layers and its relation heads: the student's last layer learns
    ``relation_teacher_layer``'s relations, in ``--relation-heads`` heads, by default 48 where they divide the
    projections' width, else the teacher's attention heads. The student is cut from the teacher's layers, so the two
    widths are the same. A family without known query and key projections is refused."""
    n_layers = teacher.config.num_hidden_layers
    layer = relation_teacher_layer(n_layers)
    width = projection_width(*attention_projections(teacher, layer)["query"])
    heads = cfg.relation_heads or (
        RELATION_HEADS if width % RELATION_HEADS == 0 else teacher.config.num_attention_heads
    )
    if width % heads:
        raise EliquareError(
            f"--relation-heads {heads} does not divide the teacher's query/key/value width {width}; give a divisor "
            f"of {width}, such as {teacher.config.num_attention_heads} (its attention heads)"
        )
    log(
        f"relation term: the student's last layer learns teacher layer {layer + 1} of {n_layers}'s query, key and "
        f"value relations in {heads} relation heads of {width // heads} dimensions"
    )
    return (-1, layer), heads


def distill(cfg: DistillConfig, callbacks: list[TrainerCallback] | None = None) -> Path:
    """Run the whole distillation stage; returns the student directory.

    ``callbacks`` are extra ``transformers.TrainerCallback`` objects (logging to your tracker, say).
    """
    run = check_output_dir(cfg)
    resume_from = resume_point(run.checkpoints) if cfg.resume else None  # complete checkpoints only
    if cfg.push_to_hub:
        check_push(cfg.push_to_hub)
    expand_paths(corpus_paths(cfg.corpus))  # a missing corpus file is reported before anything slow starts
    check_layer_map(cfg.layer_map, cfg.student_layers)  # and a bad --layer-map (the teacher's depth: once loaded)
    languages = by_language(cfg.corpus)
    weights = parse_weights(cfg.language_weights, list(languages or ()))
    if cfg.probe and not Path(cfg.probe).is_file():
        raise EliquareError(f"--probe {cfg.probe} is not a file; give a POS or NER file (CoNLL-U, BIO)")
    settings = run_settings(cfg)
    if cfg.resume:
        check_resume_settings(run.checkpoints, settings)  # before anything slow: the options alone tell these apart
    args = training_arguments(cfg, run.work_checkpoints)
    is_main = args.process_index == 0

    def log(message: str) -> None:
        if is_main:
            print(message, file=sys.stderr, flush=True)

    for notice in resume_from.notices() if resume_from else ():
        log(notice)
    started = time.time()
    teacher = load_teacher(cfg.teacher)
    # the student is built from the teacher's layers and position embeddings: the teacher's limit is its limit too
    check_max_length(cfg.max_length, length_limit(teacher.model.config, teacher.tokenizer), f"teacher {cfg.teacher}")
    reduction = None
    if cfg.vocab_reduce == "pre":  # Section 5 before distillation: the student inherits the smaller vocabulary
        reduction = reduce_on_corpus(
            teacher.model, teacher.tokenizer, cfg.corpus, cfg.corpus_options, **_vocab_selection(cfg)
        )
        teacher.tokenizer = reduction.tokenizer  # teacher.model was reduced in place
        if (notice := retokenisation_notice(reduction.report)) is not None:  # before the hours of distillation
            log(notice)
    embedding = resolve_objective(cfg, teacher, log)
    layers = select_layers(teacher.model.config.num_hidden_layers, cfg.student_layers, cfg.layer_map)
    amplification, cross, tokenizer, source = None, None, teacher.tokenizer, teacher.model
    if cfg.vocab_amp:  # VocabAmp: the student reads an amplified vocabulary, the teacher its own
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
        tokenizer, source = amplification.tokenizer, amplification.model
    with args.main_process_first(desc="preparing the corpus"):
        prepare = dict(
            max_length=cfg.max_length, validation_fraction=cfg.validation_fraction, cache_dir=cfg.cache_dir, log=log
        )
        data = (
            prepare_languages(languages, tokenizer, cfg.corpus_options, weights=weights, seed=cfg.seed, **prepare)
            if languages
            else prepare_corpus(cfg.corpus, tokenizer, cfg.corpus_options, **prepare)
        )
    plan = plan_run(cfg, teacher, layers, len(data.train), args.world_size, log, embedding, cross)
    bf16 = resolve_bf16(cfg.bf16, cfg.use_cpu)
    use_cache = wants_teacher_cache(cfg, plan, len(data.train), args.world_size)
    train_set, validation_set = training_datasets(data, cfg.pack, rows=use_cache)
    log(
        f"precision: {'bf16 autocast (fp32 weights and losses)' if bf16 else 'fp32'}; batches: "
        + ("of sentences of similar length" if cfg.pack else "in random order, padded to their longest")
        + f"; teacher cache: {'on (the teacher reads each unmasked sentence once)' if use_cache else 'off'}"
    )
    args.learning_rate = plan.recipe.learning_rate
    args.warmup_steps = math.ceil(cfg.warmup_ratio * plan.total_steps)
    # the student's fresh weights (an MLM head a headless teacher lacks) are drawn from --seed alone, not from whatever
    # the steps before drew: a corpus read from the cache instead of tokenised, or a run earlier in the same process,
    # gave the same settings another student
    set_seed(cfg.seed)
    student = build_student(source, layers, copy_head=teacher.has_mlm_head)
    if (
        embedding is not None
    ):  # the teacher's pooling (and dense layers), frozen for it, a trainable copy for the student
        from eliquare.embedding import SentencePooler

        teacher.model.sentence_pooler = SentencePooler(embedding)
        student.sentence_pooler = SentencePooler(embedding)
    if plan.weights.attn:  # attention probabilities come from the eager implementation only
        use_eager_attention(student)
        use_eager_attention(teacher.model)
    if cfg.freeze_position_embeddings:
        freeze_position_embeddings(student)
    settings.update(derived_settings(teacher, layers))
    if cfg.resume:
        check_resume_settings(run.checkpoints, settings)
        check_checkpoint_shape(resume_from.path, student)
    health = health_monitor(cfg, teacher, student, data, log, tokenizer, source)
    log(
        f"teacher: {cfg.teacher} ({count_parameters(teacher.model):,} parameters, "
        f"{teacher.model.config.num_hidden_layers} layers); student: {count_parameters(student):,} parameters, "
        f"layers {[i + 1 for i in layers]} of the teacher"
    )
    trainer = distillation_trainer(
        cfg,
        args,
        teacher,
        student,
        data,
        plan,
        health,
        callbacks,
        tokenizer,
        datasets=(train_set, validation_set),
        bf16=bf16,
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
            record["speed"] = {
                "bf16": bf16,
                "pack": cfg.pack,
                "padding_share": round(trainer.padding_share, 4),
                "torch_threads": torch.get_num_threads(),
                "teacher_cache": trainer.teacher_cache.meta if trainer.teacher_cache else None,
            }
            record["best_checkpoint"] = run.moved(record["best_checkpoint"])
            record["inference"] = student_and_teacher(teacher.model, student, len(teacher.tokenizer))  # for the card
            write_json(run.work / "distillation.json", record, indent=2)  # by a temporary name: whole or absent
            finish_student_dir(run.work)  # model card, no pickles, 0644, a tokenizer transformers 4.x loads
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


def save_student(
    cfg: DistillConfig,
    work: Path,
    trainer,
    teacher,
    student,
    reduction,
    is_main: bool,
    log,
    embedding=None,
    amplification=None,
):
    """The best checkpoint's weights (load_best_model_at_end has put them back into the student) and the
    tokenizer, reduced after distillation with --vocab-reduce post; returns the vocabulary reduction (if any).

    An embedding student is saved as a sentence-transformers model: its encoder (no MLM head), the tokenizer, and
    the teacher's pooling, dense layers (trained) and normalisation with its prompts (``eliquare.embedding``)."""
    if embedding is None:
        trainer.save_model(str(work))
    if cfg.vocab_reduce == "post" and is_main:  # Section 5 after distillation: the student alone
        reduction = reduce_on_corpus(
            student, teacher.tokenizer, cfg.corpus, cfg.corpus_options, **_vocab_selection(cfg)
        )
        if (notice := retokenisation_notice(reduction.report)) is not None:
            log(notice)
        if embedding is None:
            student.save_pretrained(work)
    if embedding is not None and is_main:
        from eliquare.embedding import save_sentence_transformers

        encoder = encoder_of(student)
        encoder.save_pretrained(work)
        if reduction is None:
            teacher.tokenizer.save_pretrained(str(work))
        save_sentence_transformers(work, embedding, encoder.config.hidden_size, pooler=student.sentence_pooler)
    if reduction is not None and is_main:
        if amplification is None:
            save_tokenizer(reduction.tokenizer, reduction.slow_files, work)
        log(format_report(reduction.report))
    if amplification is not None and is_main:  # the student's own, amplified vocabulary (trainer.save_model wrote it)
        for stale in ("sentencepiece.bpe.model", "vocab.txt"):  # a slow vocabulary file would lack the new pieces
            (work / stale).unlink(missing_ok=True)
        amplification.tokenizer.save_pretrained(str(work))
        (work / "vocab_amp_report.json").write_text(
            json.dumps(amplification.report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    return reduction


def wants_teacher_cache(cfg: DistillConfig, plan: Plan, train_sentences: int, world_size: int) -> bool:
    """``--teacher-cache`` as given (refused, exit 2, where the objective needs more than last-layer states), or by
    default: on for a run of more than one pass whose teacher terms are last-layer states only (no CE term: the
    cached states are the unmasked sentence's, and soft targets at a position whose token the teacher sees are not
    the paper's)."""
    why_not = cache_unsupported(plan.objective)
    if cfg.teacher_cache:
        if why_not:
            raise EliquareError(
                f"--teacher-cache keeps the teacher's last-layer states only, which do not serve "
                f"{why_not}; drop --teacher-cache"
            )
        return True
    if cfg.teacher_cache is False or why_not or plan.weights.ce:
        return False
    batches = plan.total_steps * cfg.gradient_accumulation * world_size
    return batches * cfg.batch_size > 1.5 * train_sentences  # more than one pass: the cache pays for itself


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
) -> TeacherCache:
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
    collator = collator_for(
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


def run_record(
    cfg: DistillConfig,
    teacher,
    student,
    layers,
    plan: Plan,
    data,
    trainer,
    train_result,
    reduction,
    health,
    started: float,
) -> dict:
    """``distillation.json``: what was distilled from what, how, and how every evaluation went."""
    return {
        "eliquare_version": __version__,
        "teacher": cfg.teacher,
        "teacher_path": teacher.path,
        "teacher_has_mlm_head": teacher.has_mlm_head,
        "teacher_layers": teacher.model.config.num_hidden_layers,
        "teacher_parameters": count_parameters(teacher.model),
        "student_layers": len(layers),
        "student_parameters": count_parameters(encoder_of(student) if plan.embedding is not None else student),
        "layer_map": cfg.layer_map,
        "teacher_layers_used": [i + 1 for i in layers],  # 1-based, as in the paper
        "objective": "embedding" if plan.embedding is not None else "masked-lm",
        "embedding": plan.embedding.as_dict() if plan.embedding is not None else None,
        "loss_weights": {
            k: v
            for k, v in asdict(plan.weights).items()
            if k in ("ce", "cos", "mlm") or v or (plan.embedding is not None and k in ("sentence", "contrastive"))
        },
        "temperature": cfg.temperature,
        **(
            {
                "relation": {  # 1-based layers, as teacher_layers_used
                    "teacher_layer": plan.objective.relation_layers[1] + 1,
                    "student_layer": len(layers),
                    "heads": plan.objective.relation_heads,
                }
            }
            if plan.weights.relation
            else {}
        ),
        "recipe": plan.recipe.as_dict(),
        "data_fingerprint": data.fingerprint,
        "corpus": [str(p) for p in cfg.corpus],
        "corpus_stats": data.stats.as_dict(),
        "languages": data.languages,
        "vocab_amp": plan.objective.cross.report if plan.objective.cross is not None else None,
        "epochs": trainer.state.epoch,
        "steps": trainer.state.global_step,
        "validation": [dict(e) for e in trainer.state.log_history if "eval_loss" in e],
        "best_validation_loss": trainer.state.best_metric,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "tokens_seen": trainer.state.num_input_tokens_seen,
        "train_metrics": train_result.metrics,  # runtime, samples/s, tokens/s (non-padding) of this session
        "wall_seconds": round(time.time() - started, 1),
        "machine": machine(),
        "vocab_reduce": reduction.report if reduction is not None else None,
        "health": health.references() if health is not None else None,  # per evaluation: in "validation"
        "config": asdict(cfg),
    }
