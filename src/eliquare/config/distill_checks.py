"""The checks of `eliquare distill`'s options, run when a ``DistillConfig`` is made: every bad value is refused
with one line that names it and the fix, before anything is read or written."""

from __future__ import annotations

from typing import Any

from eliquare.config.options import check_masked_text, check_vocab_selection
from eliquare.errors import EliquareError


def check_loss(cfg: Any) -> None:
    """The loss terms' weights and temperatures of a distillation config."""
    if cfg.temperature <= 0:
        raise EliquareError("temperature must be positive, e.g. 2.0")
    for name in (
        "alpha_cos",
        "alpha_mlm",
        "alpha_sentence",
        "alpha_contrastive",
        "alpha_hidden",
        "alpha_attn",
        "alpha_value",
        "alpha_relation",
    ):
        if getattr(cfg, name) is not None and getattr(cfg, name) < 0:
            raise EliquareError(f"{name} must be >= 0")
    if cfg.alpha_ce is not None and cfg.alpha_ce < 0:
        raise EliquareError("alpha_ce must be >= 0")
    if cfg.relation_heads is not None and cfg.relation_heads < 1:
        raise EliquareError("relation_heads must be at least 1, e.g. 48 (leave it out for the default)")
    if cfg.recipe == "minilmv2" and cfg.alpha_cos != 1.0:  # --alpha-cos given (1 is its default)
        raise EliquareError(
            "--recipe minilmv2 has no hidden-state cosine term (its loss is the relation and MLM terms); drop "
            "--alpha-cos, or give --recipe eliquare --alpha-relation 1 with it"
        )
    if cfg.contrastive_temperature <= 0:
        raise EliquareError("contrastive_temperature must be positive, e.g. 0.05")
    if cfg.objective == "masked-lm" and (
        cfg.alpha_ce is not None
        and not (
            cfg.alpha_ce
            or cfg.cosine_weight()
            or cfg.mlm_weight("masked-lm")
            or cfg.alpha_hidden
            or cfg.alpha_attn
            or cfg.alpha_value
            or cfg.relation_weight()
        )
    ):
        raise EliquareError("all loss weights are 0; give at least one of --alpha-ce, --alpha-cos, --alpha-mlm > 0")


def check_schedule(cfg: Any) -> None:
    """Masking, batches, the schedule, checkpoints and the health measures."""
    check_masked_text(cfg)
    if cfg.mask_replace < 0 or cfg.random_replace < 0 or cfg.mask_replace + cfg.random_replace > 1:
        raise EliquareError("mask_replace and random_replace must be >= 0 and sum to at most 1")
    if cfg.batch_size < 1 or cfg.gradient_accumulation < 1:
        raise EliquareError("batch_size and gradient_accumulation must be at least 1")
    if cfg.epochs <= 0 and cfg.max_steps <= 0:
        raise EliquareError(f"epochs is {cfg.epochs:g}: give a positive --epochs (paper: 10), or --max-steps")
    if cfg.logging_steps < 1:
        raise EliquareError("logging_steps must be at least 1, e.g. 10")
    if cfg.eval_steps is not None and cfg.eval_steps < 1:
        raise EliquareError("eval_steps must be at least 1 (leave it out to evaluate once per epoch)")
    if cfg.save_total_limit < 1:
        raise EliquareError(
            "save_total_limit must be at least 1 (the minimum; 1 keeps the last checkpoint and the best one), e.g. 2"
        )
    if cfg.max_minutes is not None and cfg.max_minutes <= 0:
        raise EliquareError("max_minutes must be positive, e.g. 30")
    if cfg.learning_rate is not None and cfg.learning_rate <= 0:
        raise EliquareError("learning_rate must be positive, e.g. 1e-4")
    if cfg.head_warmup is not None and not 0 <= cfg.head_warmup <= 1:
        raise EliquareError("head_warmup is a share of the steps: give a value from 0 to 1")
    if cfg.health_sentences < 0 or 0 < cfg.health_sentences < 3:
        raise EliquareError("health_sentences must be 0 (off) or at least 3, e.g. 128")
    if cfg.probe is not None and not cfg.health_sentences:
        raise EliquareError("--probe needs the health measures; drop --health-sentences 0")
    if not 0 <= cfg.warmup_ratio <= 1:
        raise EliquareError("warmup_ratio is a share of the steps: give a value from 0 to 1, e.g. 0.05")


def check_vocabulary(cfg: Any) -> None:
    """VocabReduce's selection and VocabAmp."""
    check_vocab_selection(cfg.vocab_min_fraction, cfg.vocab_min_count, cfg.vocab_max_size, "vocab_", cfg.vocab_coverage)
    if cfg.vocab_amp < 0:
        raise EliquareError("vocab_amp is a number of pieces to add: give 0 (off) or more, e.g. 1000")
    if cfg.vocab_amp and (
        cfg.vocab_reduce == "post"
        or cfg.objective != "masked-lm"
        or cfg.hidden_layers == "mapped"
        or cfg.alpha_hidden
        or cfg.alpha_attn
        or cfg.alpha_value
        or cfg.relation_weight()
    ):
        raise EliquareError(
            "--vocab-amp works with the masked-LM objective on last-layer states, with "
            "--vocab-reduce pre or none; drop --vocab-reduce post, --objective, --hidden-layers "
            "mapped and the layer-wise terms"
        )
