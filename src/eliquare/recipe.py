"""Training recipes: the paper's exact setting, and eliquare's default, which differs where we measured it must.

``paper`` (Singh et al. 2023, Section 4): plain cosine on the last hidden states, lr 5e-4 whatever the
batch, and (for a teacher without an MLM head) a fresh head trained with the encoder from the first step.

``eliquare`` (the default; results/collapse/report.md has the measurements behind each choice):

- **centred cosine.** The hidden-state term subtracts each side's batch-mean token state first. A teacher
  whose last layer is anisotropic (multilingual-e5: mean pairwise cosine 0.65) lets one constant vector meet
  most of the plain term, and a plain-cosine student drifts towards that vector; centred, it scores 0.
- **batch-scaled learning rate.** 5e-4 was set for 1,600 sequences per update; with fewer, the peak rate
  is scaled by the square root of the ratio (64 sequences: 1e-4), never above 5e-4.
- **head warm-up.** A fresh MLM head (a teacher without one, such as e5) first learns the unigram prior; in
  the first 10% of the steps its gradients train the head only and do not reach the encoder.

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
    hidden_loss: str  # "cosine" or "centred-cosine"
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
        hidden, lr, warm = "cosine", PAPER_LEARNING_RATE, 0.0
    else:
        hidden, lr, warm = "centred-cosine", scaled_learning_rate(sequences_per_update), 0.1
    return Recipe(
        name=cfg.recipe,
        hidden_loss=cfg.hidden_loss or hidden,
        learning_rate=cfg.learning_rate if cfg.learning_rate is not None else lr,
        head_warmup=(cfg.head_warmup if cfg.head_warmup is not None else warm) if fresh_head else 0.0,
    )
