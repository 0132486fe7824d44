"""Fine-tune on the task's own vocabulary: exact, and several times faster for a multilingual model.

A multilingual model's embedding matrix is most of its weights (multilingual-e5-small: 96 M of 117 M
parameters, 250k rows), and AdamW updates all of it at every step although a task's files use a few
thousand of its tokens. Fine-tuning on the rows the task's files use, and nothing else, changes no
score: the sentences are tokenised by the model's own tokenizer, unchanged, and only their ids are
renumbered, so every sentence gets the same tokens and the same hidden states; the rows left out get
no gradient either way (they are never looked up), so the gradient norm, the clipping and the Adam
updates of every other weight are the same as with the full matrix. Only weight decay of the unused
rows is skipped, and those rows never reach an output. ``expand`` puts the trained rows back into
the full matrix, so a saved model has its original vocabulary and tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class TaskVocabulary:
    kept_ids: np.ndarray  # old ids in their new order (ascending): new id i is old id kept_ids[i]
    lookup: np.ndarray  # old id -> new id, -1 where the id was left out
    full_size: int  # rows of the model's full embedding matrix
    _original: dict = field(default_factory=dict, repr=False)  # what ``expand`` restores

    @classmethod
    def of(cls, features: Iterable[dict], tokenizer, full_size: int) -> TaskVocabulary:
        """Every id in ``features`` (all splits), plus the tokenizer's special ids (padding included)."""
        used = np.zeros(full_size, dtype=bool)
        for feature in features:
            used[np.asarray(feature["input_ids"], dtype=np.int64)] = True
        used[[i for i in tokenizer.all_special_ids if i is not None and i < full_size]] = True
        if tokenizer.pad_token_id is not None:
            used[: tokenizer.pad_token_id + 1] = True  # RoBERTa-style position ids need the pad id to stay put
        kept = np.flatnonzero(used)
        lookup = np.full(full_size, -1, dtype=np.int64)
        lookup[kept] = np.arange(len(kept))
        return cls(kept_ids=kept, lookup=lookup, full_size=full_size)

    def remap(self, features: list[dict]) -> list[dict]:
        """The features with their input ids renumbered (new dicts; the others are left as they are)."""
        out = []
        for feature in features:
            ids = self.lookup[np.asarray(feature["input_ids"], dtype=np.int64)]
            if (ids < 0).any():
                raise ValueError("a feature holds an id outside the task vocabulary")  # cannot happen: of() saw it
            out.append({**feature, "input_ids": ids.tolist()})
        return out

    def shrink(self, model) -> dict:
        """Keep only the task's rows of ``model``'s embeddings (in place); returns the sizes before and after."""
        from eliquare.models import count_parameters
        from eliquare.vocab.slicing import slice_vocabulary

        config = model.config.get_text_config()
        self._original = {
            "embeddings": model.get_input_embeddings().weight.detach().to("cpu", copy=True),
            "padding_idx": model.get_input_embeddings().padding_idx,
            "token_ids": {k: v for k, v in config.to_dict().items() if k.endswith("_token_id")},
        }
        before = count_parameters(model)
        slice_vocabulary(model, self.kept_ids)
        return {
            "vocab_size": {"before": self.full_size, "after": len(self.kept_ids)},
            "parameters": {"before": before, "after": count_parameters(model)},
        }

    def expand(self, model) -> None:
        """Put the trained rows back into the full embedding matrix: the model reads the full vocabulary again."""
        import torch

        small = model.get_input_embeddings().weight.detach()
        full = self._original["embeddings"].to(small.device, small.dtype).clone()
        full[torch.as_tensor(self.kept_ids, device=small.device)] = small
        model.set_input_embeddings(
            torch.nn.Embedding.from_pretrained(full, freeze=False, padding_idx=self._original["padding_idx"])
        )
        config = model.config.get_text_config()
        config.vocab_size = self.full_size
        for key, value in self._original["token_ids"].items():
            setattr(config, key, value)
