"""What a distillation run leaves in the student directory: the best checkpoint's weights and its tokenizer
(reduced after distillation with ``--vocab-reduce post``, or amplified with ``--vocab-amp``), a sentence-transformers
model for the embedding objective, and ``distillation.json``, the record of what was distilled from what, how, and
how every evaluation went (the model card is written from it)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from eliquare import __version__
from eliquare.atomic import write_json
from eliquare.config import DistillConfig
from eliquare.distill.plan import Plan
from eliquare.distill.rundir import RunDirectory, _vocab_selection
from eliquare.models import count_parameters, encoder_of
from eliquare.publish import finish_student_dir
from eliquare.speed import machine, student_and_teacher
from eliquare.vocab import (
    format_report,
    reduce_on_corpus,
    retokenisation_notice,
    save_tokenizer,
)


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
    if cfg.vocab_reduce == "post" and is_main:
        reduction = reduce_after_distillation(cfg, student, teacher.tokenizer, log)
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


def reduce_after_distillation(cfg: DistillConfig, student, tokenizer, log):
    """Section 5 after distillation (``--vocab-reduce post``): the student alone reduced, in place, to the subwords
    of the corpus it was distilled on; says so when many words are re-tokenised. Returns the reduction."""
    reduction = reduce_on_corpus(student, tokenizer, cfg.corpus, cfg.corpus_options, **_vocab_selection(cfg))
    if (notice := retokenisation_notice(reduction.report)) is not None:
        log(notice)
    return reduction


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
        **terms_record(cfg, plan, len(layers)),
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


def terms_record(cfg: DistillConfig, plan: Plan, student_layers: int) -> dict:
    """The loss terms' part of ``distillation.json``: the weights that are on (and the paper's three always), the
    temperature, and where the relation term is on, its layers and heads."""
    return {
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
                    "student_layer": student_layers,
                    "heads": plan.objective.relation_heads,
                }
            }
            if plan.weights.relation
            else {}
        ),
    }


def write_record(cfg: DistillConfig, run: RunDirectory, record: dict, trainer, teacher, student, bf16: bool) -> None:
    """``distillation.json`` with the run's speed settings and the inference cost beside the teacher's, written whole
    or not at all, then the student directory made ready to publish."""
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
