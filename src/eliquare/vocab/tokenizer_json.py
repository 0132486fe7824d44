"""The parts of a ``tokenizer.json`` that hold token ids, whatever the tokenizer family.

A reduced tokenizer is the original ``tokenizer.json`` with a smaller model section (done by the
family module), its added tokens and post-processor renumbered (done here), loaded back through the
tokenizer's own class so that it behaves exactly like the original one loaded from disk.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import numpy as np

from eliquare.errors import EliquareError


def tokenizer_json(tokenizer) -> dict:
    """The serialised backend of a transformers fast tokenizer, without the truncation and padding that its last
    call left on it (a tokenizer made from it would keep them: a ``max_length`` in its config, a cut in its file)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise EliquareError(
            f"{type(tokenizer).__name__} has no fast (tokenizers) backend; vocabulary reduction needs "
            "a tokenizer with a tokenizer.json (load it with AutoTokenizer)"
        )
    return {**json.loads(backend.to_str()), "truncation": None, "padding": None}


def id_to_token(tokenizer) -> list[str | None]:
    """Token string of every id 0..V-1 (None for an id the tokenizer does not use)."""
    vocab = tokenizer.backend_tokenizer.get_vocab(with_added_tokens=True)
    tokens: list[str | None] = [None] * tokenizer.backend_tokenizer.get_vocab_size(with_added_tokens=True)
    for token, i in vocab.items():
        tokens[i] = token
    return tokens


def added_token_mask(tj: dict, size: int) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[[t["id"] for t in tj.get("added_tokens", [])]] = True
    return mask


def _remap_post_processor(pp: dict | None, new_id: np.ndarray) -> dict | None:
    if pp is None:
        return None
    kind = pp.get("type")
    pp = copy.deepcopy(pp)
    if kind == "TemplateProcessing":
        for spec in pp.get("special_tokens", {}).values():
            spec["ids"] = [int(new_id[i]) for i in spec["ids"]]
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for key in ("sep", "cls"):
            token, i = pp[key]
            pp[key] = [token, int(new_id[i])]
    elif kind == "Sequence":
        pp["processors"] = [_remap_post_processor(p, new_id) for p in pp["processors"]]
    elif kind != "ByteLevel":
        raise EliquareError(
            f"tokenizer post-processor '{kind}' is not supported by vocabulary reduction; supported: "
            "TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, Sequence"
        )
    return pp


def reduce_tokenizer_json(tj: dict, kept_ids: np.ndarray, vocab_size: int, reduce_model) -> dict:
    """``tj`` with only ``kept_ids`` (sorted old ids; new id = position), renumbered throughout.

    ``reduce_model(model_section, new_id)`` gives the family's reduced model section; ``new_id[old]``
    is the new id of an old one, -1 for a dropped one.
    """
    new_id = np.full(vocab_size, -1, dtype=np.int64)
    new_id[kept_ids] = np.arange(len(kept_ids))
    out = {k: v for k, v in tj.items() if k not in ("model", "added_tokens", "post_processor")}
    lost = [t["content"] for t in tj.get("added_tokens", []) if new_id[t["id"]] < 0]
    if lost:
        raise EliquareError(f"added tokens {lost[:5]} would be dropped; they must be kept")
    out["added_tokens"] = [dict(t, id=int(new_id[t["id"]])) for t in tj.get("added_tokens", [])]
    out["post_processor"] = _remap_post_processor(tj.get("post_processor"), new_id)
    out["model"] = reduce_model(tj["model"], new_id)
    padding = out.get("padding")
    if padding and "pad_id" in padding:
        out["padding"] = dict(padding, pad_id=int(new_id[padding["pad_id"]]))
    return out


def load_reduced_tokenizer(tokenizer, new_tj: dict):
    """A tokenizer of the same class as ``tokenizer`` whose backend is ``new_tj``.

    It goes through ``save_pretrained`` / ``from_pretrained``, so the result is what loading the saved
    directory gives (transformers rebuilds some tokenizer classes from the vocabulary on load).
    """
    with tempfile.TemporaryDirectory(prefix="eliquare-vocab-") as tmp:
        tokenizer.save_pretrained(tmp)
        Path(tmp, "tokenizer.json").write_text(json.dumps(new_tj, ensure_ascii=False), encoding="utf-8")
        reduced = type(tokenizer).from_pretrained(tmp)
    reduced.name_or_path = tokenizer.name_or_path
    expected = {t: i for i, t in enumerate(_tokens_in_order(new_tj))}
    if reduced.get_vocab() != expected:
        raise EliquareError(
            f"{type(tokenizer).__name__} renumbered the reduced vocabulary when loading it; this "
            "tokenizer class is not supported by vocabulary reduction"
        )
    return reduced


def _tokens_in_order(tj: dict) -> list[str]:
    vocab = tj["model"]["vocab"]
    tokens = [p[0] for p in vocab] if isinstance(vocab, list) else sorted(vocab, key=vocab.get)
    by_id = dict(enumerate(tokens))
    for t in tj.get("added_tokens", []):
        by_id[t["id"]] = t["content"]
    return [by_id[i] for i in range(len(by_id))]
