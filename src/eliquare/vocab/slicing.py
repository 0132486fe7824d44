"""Cut a model down to a subset of its vocabulary: word embeddings, MLM decoder and its bias (Section 5).

Row ``i`` of the reduced matrices is row ``kept_ids[i]`` of the original ones, so a token keeps its
embedding and its output logit; nothing else in the model changes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from eliquare.errors import EliquareError


def _vocabulary_tensors(model) -> list[torch.Tensor]:
    """The tensors with one row per token id (tied ones once): input embeddings, MLM decoder weight and bias."""
    tensors = [model.get_input_embeddings().weight]
    head = model.get_output_embeddings()
    if head is not None:
        tensors += [head.weight] + ([head.bias] if getattr(head, "bias", None) is not None else [])
    return list({id(t): t for t in tensors}.values())


def slice_vocabulary(model, kept_ids) -> None:
    """Keep rows ``kept_ids`` (old ids, in their new order) of every vocabulary-sized tensor, in place.

    The rows are first moved to the front and the matrices then shortened with ``resize_token_embeddings``,
    which also updates ``config.vocab_size`` and re-ties tied weights. Token ids stored in the config
    (``pad_token_id``, ``bos_token_id``, ...) are renumbered.
    """
    kept = torch.as_tensor(np.asarray(kept_ids, dtype=np.int64))
    embeddings = model.get_input_embeddings()
    rows = embeddings.weight.shape[0]
    if kept.numel() == 0 or int(kept.min()) < 0 or int(kept.max()) >= rows:
        raise EliquareError(
            f"kept ids must lie in 0..{rows - 1}, the model's vocabulary; the tokenizer does not belong to this model"
        )
    if len(set(kept.tolist())) != kept.numel():
        raise EliquareError("kept ids must not repeat")
    new_id = {old: new for new, old in enumerate(kept.tolist())}
    old_pad = model.config.pad_token_id
    new_pad = new_id.get(old_pad) if old_pad is not None else None
    if old_pad is not None and new_pad != old_pad and _positions_follow_padding(model):
        # RoBERTa-style models number positions from padding_idx + 1: moving the pad id shifts them all
        raise EliquareError(
            f"the reduction would move the pad token from id {old_pad} to {new_pad}, which shifts this "
            "model's position ids; keep the special tokens first in the vocabulary"
        )
    with torch.no_grad():
        for tensor in _vocabulary_tensors(model):
            tensor[: kept.numel()] = tensor[kept.to(tensor.device)]  # the right side is a copy: safe in place
    model.resize_token_embeddings(kept.numel(), mean_resizing=False)
    model.get_input_embeddings().padding_idx = new_pad
    config = model.config.get_text_config()
    for key, value in config.to_dict().items():
        if key.endswith("_token_id") and isinstance(value, int) and not isinstance(value, bool):
            setattr(config, key, new_id.get(value))


def _positions_follow_padding(model) -> bool:
    return any(
        isinstance(getattr(m, "padding_idx", None), int) and not isinstance(m, nn.Embedding) for m in model.modules()
    )
