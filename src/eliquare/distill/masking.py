"""MLM masking in the collator, per batch (Section 4 of the paper, as in DistilBERT).

15% of the (non-special, non-padding) tokens of a batch are chosen for prediction; of those 80%
become the mask token, 10% a random token and 10% stay as they are. The choice is weighted by
frequency smoothing: token t is chosen with weight count(t) ** -0.7, so rarer tokens are masked
more often than uniform masking would (DistilBERT's `mlm_smoothing`).

The random draws of a batch come from a generator seeded by the run's seed and the batch's own
token ids, not from the global RNG: a run resumed from a checkpoint masks every batch exactly as
the uninterrupted run did (data loaders fetch batches ahead, so global-RNG masking cannot be
replayed), and validation batches get the same masks at every evaluation.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from eliquare.models import IGNORE_INDEX


def smoothed_token_weights(token_counts: np.ndarray, smoothing: float, special_ids: Sequence[int]) -> torch.Tensor:
    """Selection weight of every vocabulary id: max(count, 1) ** -smoothing; 0 for special tokens."""
    weights = np.maximum(np.asarray(token_counts, dtype=np.float64), 1.0) ** (-smoothing)
    weights[list(special_ids)] = 0.0
    return torch.tensor(weights, dtype=torch.float32)


@dataclass
class MaskingCollator:
    """Pads a list of ``{"input_ids": [...]}`` examples to the longest one and masks the batch."""

    pad_token_id: int
    mask_token_id: int
    token_weights: torch.Tensor  # from smoothed_token_weights; 0 = never masked
    mlm_probability: float = 0.15
    mask_replace: float = 0.8
    random_replace: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        # random replacements are drawn uniformly from the ordinary (non-special) vocabulary
        self._random_pool = torch.nonzero(self.token_weights > 0).flatten()

    def pad(self, examples: Sequence[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        longest = max(len(e["input_ids"]) for e in examples)
        input_ids = torch.full((len(examples), longest), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(examples), longest), dtype=torch.long)
        for i, e in enumerate(examples):
            ids = torch.as_tensor(e["input_ids"], dtype=torch.long)
            input_ids[i, : len(ids)] = ids
            attention[i, : len(ids)] = 1
        return input_ids, attention

    def generator_for(self, input_ids: torch.Tensor) -> torch.Generator:
        digest = hashlib.blake2b(
            input_ids.numpy().tobytes(), digest_size=8, key=self.seed.to_bytes(8, "little", signed=True)
        )
        return torch.Generator().manual_seed(int.from_bytes(digest.digest(), "little") >> 1)

    def mask(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (masked input ids, labels): labels hold the original id at chosen positions, -100 elsewhere."""
        g = generator if generator is not None else self.generator_for(input_ids)
        weights = self.token_weights[input_ids] * attention_mask  # padding and special tokens weigh 0
        flat = weights.flatten()
        candidates = int((flat > 0).sum())
        labels = torch.full_like(input_ids, IGNORE_INDEX)
        if candidates == 0:
            return input_ids.clone(), labels
        n_targets = min(candidates, max(1, math.ceil(self.mlm_probability * candidates)))
        chosen = torch.multinomial(flat, n_targets, replacement=False, generator=g)
        selected = torch.zeros_like(flat, dtype=torch.bool)
        selected[chosen] = True
        selected = selected.view_as(input_ids)
        labels[selected] = input_ids[selected]

        masked = input_ids.clone()
        action = torch.rand(input_ids.shape, generator=g)
        to_mask = selected & (action < self.mask_replace)
        to_random = selected & (action >= self.mask_replace) & (action < self.mask_replace + self.random_replace)
        masked[to_mask] = self.mask_token_id
        if to_random.any():
            picks = torch.randint(len(self._random_pool), (int(to_random.sum()),), generator=g)
            masked[to_random] = self._random_pool[picks]
        return masked, labels

    def __call__(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = self.pad(examples)
        masked, labels = self.mask(input_ids, attention_mask)
        batch = {"input_ids": masked, "attention_mask": attention_mask, "labels": labels}
        if "row" in examples[0]:  # the sentences' indices in their split, for the teacher's cached states
            batch["rows"] = torch.as_tensor([e["row"] for e in examples], dtype=torch.long)
        return batch


def collator_for(
    tokenizer,
    token_counts: np.ndarray,
    *,
    mlm_probability: float = 0.15,
    mask_replace: float = 0.8,
    random_replace: float = 0.1,
    smoothing: float = 0.7,
    seed: int = 0,
) -> MaskingCollator:
    if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
        from eliquare.errors import EliquareError

        raise EliquareError("the tokenizer has no mask or padding token; a masked-LM tokenizer is needed")
    counts = np.zeros(len(tokenizer), dtype=np.int64)
    counts[: len(token_counts)] = token_counts[: len(counts)]
    special = set(tokenizer.all_special_ids)
    weights = smoothed_token_weights(counts, smoothing, sorted(special))
    return MaskingCollator(
        tokenizer.pad_token_id, tokenizer.mask_token_id, weights, mlm_probability, mask_replace, random_replace, seed
    )
