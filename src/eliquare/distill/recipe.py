"""Training recipes: the paper's exact setting, eliquare's default, which differs where we measured it must, and
MiniLMv2's objective.

``paper`` (Singh et al. 2023, Section 4): plain cosine on the last hidden states, lr 5e-4 whatever the
batch, and (for a teacher without an MLM head) a fresh head trained with the encoder from the first step.

``eliquare`` (the default; results/collapse/report.md has the measurements behind each choice):

- **centred cosine.** The hidden-state term subtracts each side's batch-mean token state first. A teacher
  whose last layer is anisotropic (multilingual-e5: mean pairwise cosine 0.65) lets one constant vector meet
  most of the plain term, and a plain-cosine student drifts towards that vector; centred, it scores 0.
- **batch-scaled learning rate.** 5e-4 was set for 1,600 sequences per update; with fewer, the peak rate
  is scaled by the square root of the ratio (64 sequences: 1e-4), never above 5e-4.
- **a fresh head trains alone.** A fresh MLM head (a teacher without one, such as e5) starts by learning the
  unigram prior, and its gradients are noise to a pretrained encoder: on Swahili, 40 steps with the MLM term
  reaching the encoder raised the student's token-state collapse from 0.32 to 0.63 and lowered its probe,
  where the centred term alone kept 0.34 and raised it. So the MLM term trains the head only (the student
  still gets a working fill-mask head) and the encoder learns from the teacher; ``--head-warmup 0.1`` lets
  the MLM term reach the encoder after the first 10% of the steps.

``minilmv2`` (Wang et al. 2021): the student learns the teacher's multi-head self-attention relations (query-query,
key-key and value-value of one teacher layer against the student's last, ``losses.attention_relation_loss``) in place
of the soft targets and the hidden-state cosine: L = 1 L_relation + 2 L_mlm (``DistillConfig.loss_weights``), with
eliquare's learning rate and fresh-head warm-up. ``--alpha-relation`` and ``--alpha-mlm`` set its weights,
``--alpha-ce`` brings the soft targets back; its cosine term is off, and an ``--alpha-cos`` is refused.

Each choice is also a flag of its own (``--hidden-loss``, ``--learning-rate``, ``--head-warmup``), which
overrides the recipe.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

PAPER_LEARNING_RATE = 5e-4
PAPER_BATCH = 32 * 50  # sequences per optimizer update in the paper


@dataclass(frozen=True)
class Recipe:
    name: str
    hidden_loss: str  # "cosine", "centred-cosine" or "mse"
    hidden_layers: str  # "last" (Eq. 7) or "mapped" (every student layer against the end of its teacher block)
    learning_rate: float
    head_warmup: float  # share of the optimizer steps in which a fresh head's gradient stays in the head

    def as_dict(self) -> dict:
        return asdict(self)


def scaled_learning_rate(sequences_per_update: int) -> float:
    """The paper's 5e-4 scaled by sqrt(batch / 1600), never above it (square-root scaling for Adam)."""
    return PAPER_LEARNING_RATE * min(1.0, math.sqrt(sequences_per_update / PAPER_BATCH))


def resolve_recipe(cfg, sequences_per_update: int, fresh_head: bool) -> Recipe:
    """The recipe's values, with every flag the user gave taking precedence."""
    if cfg.recipe == "paper":
        hidden, layers, lr, warm = "cosine", "last", PAPER_LEARNING_RATE, 0.0
    else:  # eliquare, and minilmv2 (whose weights, DistillConfig.loss_weights, leave the hidden-state term out)
        hidden, layers, lr, warm = "centred-cosine", "last", scaled_learning_rate(sequences_per_update), 1.0
    return Recipe(
        name=cfg.recipe,
        hidden_loss=cfg.hidden_loss or hidden,
        hidden_layers=cfg.hidden_layers or layers,
        learning_rate=cfg.learning_rate if cfg.learning_rate is not None else lr,
        head_warmup=(cfg.head_warmup if cfg.head_warmup is not None else warm) if fresh_head else 0.0,
    )
