"""What a distillation run will do, settled once the teacher and the corpus are known: the objective (masked-LM
or sentence embedding), the loss weights of Eq. 4 and their extensions, the recipe, the relation term's layers and
heads, the optimizer steps, and whether the teacher's states are cached. Nothing here trains or writes."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

from eliquare.config import DistillConfig
from eliquare.distill.losses import (
    LossWeights,
    Objective,
)
from eliquare.distill.recipe import Recipe, resolve_recipe
from eliquare.distill.student import (
    hidden_targets,
    relation_teacher_layer,
)
from eliquare.distill.teacher_cache import cache_unsupported
from eliquare.errors import EliquareError
from eliquare.models import (
    attention_projections,
    projection_width,
)
from eliquare.teachers import teacher_embedding_spec


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
    log_recipe(recipe, weights, log)
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


def log_recipe(recipe: Recipe, weights: LossWeights, log) -> None:
    """One line: the recipe's hidden-state term, peak learning rate and head warm-up."""
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
