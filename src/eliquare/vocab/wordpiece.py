"""WordPiece (BERT, mBERT): the family the paper reduced.

Greedy longest-match-first makes a word [UNK] as soon as one of its characters has no piece, so
every character seen in the corpus keeps both its word-initial piece ``c`` and its continuation
piece ``##c``: any word made of seen characters can still be spelt out.
"""

from __future__ import annotations

import numpy as np

MODEL_TYPE = "WordPiece"
SLOW_VOCAB_FILE = "vocab.txt"  # what BertTokenizerLegacy (the slow BERT tokenizer) reads


def check(tj: dict) -> None:
    pass


def _prefix(tj: dict) -> str:
    return tj["model"].get("continuing_subword_prefix") or "##"


def required_ids(tj: dict, tokens: list[str | None], seen: np.ndarray, added: np.ndarray) -> np.ndarray:
    """``c`` and ``##c`` for every character of every (non-added) token seen in the corpus."""
    prefix = _prefix(tj)
    token_id = {t: i for i, t in enumerate(tokens) if t is not None}
    chars: set[str] = set()
    for i in np.flatnonzero(seen & ~added):
        token = tokens[i]
        assert token is not None  # an id seen in the corpus has a token
        chars.update(token[len(prefix) :] if token.startswith(prefix) and len(token) > len(prefix) else token)
    required = np.zeros(len(tokens), dtype=bool)
    for c in chars:
        for piece in (c, prefix + c):
            if piece in token_id:
                required[token_id[piece]] = True
    return required


def close(tj: dict, keep: np.ndarray, tokens: list[str | None]) -> np.ndarray:
    return keep  # a WordPiece vocabulary has no internal dependencies


def reduce_model(model: dict, new_id: np.ndarray) -> dict:
    vocab = {t: int(new_id[i]) for t, i in model["vocab"].items() if new_id[i] >= 0}
    return dict(model, vocab=dict(sorted(vocab.items(), key=lambda kv: kv[1])))


def slow_files(tokenizer, new_tokens: list[str], new_tj: dict) -> dict[str, bytes]:
    """``vocab.txt``: one token per line in id order, for the slow tokenizer and older transformers."""
    return {SLOW_VOCAB_FILE: ("\n".join(new_tokens) + "\n").encode("utf-8")}
