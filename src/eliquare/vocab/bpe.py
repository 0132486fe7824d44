"""BPE: byte-level (RoBERTa, GPT-2, ModernBERT) and SentencePiece-style (Gemma, Llama 2: pieces of characters,
``▁`` for a space, byte fallback); merges are pruned consistently.

Byte-level BPE spells any text with its 256 byte symbols, which always stay. SentencePiece-style BPE starts from
characters: every character of a piece seen in the corpus keeps its single-character piece (as the unigram family
does), and with byte fallback the 256 ``<0xNN>`` pieces stay, so nothing seen becomes unknown.

BPE builds a token by a chain of merges, and the backend requires every merge's parts and result to
be in the vocabulary. A kept token therefore brings along the intermediate tokens of its own
derivation (found by running BPE on the token alone: inside a word, the merges within one final
token happen in the same order as when that token stands alone). The merges kept are exactly those
whose two parts and result are all kept, in their original order: the merges applied to any word
whose original tokens are all kept are among them, so such a word is tokenised identically.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from eliquare.errors import EliquareError

MODEL_TYPE = "BPE"
_BYTE_PIECE = re.compile(r"^<0x[0-9A-F]{2}>$")


def _has_byte_level(component: dict | None) -> bool:
    if not component:
        return False
    if component.get("type") == "ByteLevel":
        return True
    return any(_has_byte_level(c) for c in component.get("pretokenizers", []))


def check(tj: dict) -> None:
    model = tj["model"]
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        raise EliquareError(
            "BPE tokenizers with word prefixes or suffixes (continuing_subword_prefix, "
            "end_of_word_suffix) cannot be reduced; supported: byte-level BPE (RoBERTa, GPT-2) and "
            "SentencePiece-style BPE (Gemma, Llama 2)"
        )


def _merges(model: dict) -> list[tuple[str, str]]:
    # each merge is a pair, "a b" or [a, b]; mypy sees only tuple[str, ...]
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]  # type: ignore[misc]


def required_ids(tj: dict, tokens: list[str | None], seen: np.ndarray, added: np.ndarray) -> np.ndarray:
    """Byte-level: the 256 byte symbols, with which any text can be spelt. SentencePiece-style: the single-character
    piece of every character of every (non-added) piece seen in the corpus, and the byte pieces of byte fallback."""
    token_id = {t: i for i, t in enumerate(tokens) if t is not None}
    required = np.zeros(len(tokens), dtype=bool)
    if _has_byte_level(tj.get("pre_tokenizer")):
        from tokenizers.pre_tokenizers import ByteLevel

        required[[token_id[c] for c in ByteLevel.alphabet() if c in token_id]] = True
        return required
    chars: set[str] = set()
    for i in np.flatnonzero(seen & ~added):
        token = tokens[i]
        assert token is not None  # an id seen in the corpus has a token
        chars.update(token)
    required[[token_id[c] for c in chars if c in token_id]] = True
    if tj["model"].get("byte_fallback"):
        required[[i for i, t in enumerate(tokens) if t is not None and _BYTE_PIECE.match(t)]] = True
    return required


def derivation(token: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """The tokens BPE creates, in order, when it tokenises ``token`` on its own (lowest rank first, leftmost)."""
    symbols = list(token)
    made = []
    while len(symbols) > 1:
        best = min((ranks.get(pair, math.inf), i) for i, pair in enumerate(zip(symbols, symbols[1:])))
        if best[0] == math.inf:
            break
        i = best[1]
        symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
        made.append(symbols[i])
    return made


def close(tj: dict, keep: np.ndarray, tokens: list[str | None]) -> np.ndarray:
    """Add the intermediate tokens every kept token is built from."""
    ranks: dict[tuple[str, str], int] = {}
    for rank, pair in enumerate(_merges(tj["model"])):
        ranks.setdefault(pair, rank)
    token_id = {t: i for i, t in enumerate(tokens) if t is not None}
    added = {t["id"] for t in tj.get("added_tokens", [])}
    keep = keep.copy()
    for i in np.flatnonzero(keep):
        token = tokens[i]
        assert token is not None  # a kept id has a token
        if i not in added:
            for made in derivation(token, ranks):
                keep[token_id[made]] = True
    return keep


def reduce_model(model: dict, new_id: np.ndarray) -> dict:
    vocab = {t: int(new_id[i]) for t, i in model["vocab"].items() if new_id[i] >= 0}
    merges = [(a, b) for a, b in _merges(model) if a in vocab and b in vocab and a + b in vocab]
    as_strings = bool(model["merges"]) and isinstance(model["merges"][0], str)
    return dict(
        model,
        vocab=dict(sorted(vocab.items(), key=lambda kv: kv[1])),
        merges=[f"{a} {b}" for a, b in merges] if as_strings else [list(m) for m in merges],
    )


def slow_files(tokenizer, new_tokens: list[str], new_tj: dict) -> dict[str, bytes]:
    """Byte-level: ``vocab.json`` and ``merges.txt``, the GPT-2/RoBERTa vocabulary files. SentencePiece-style: the
    tokenizer's SentencePiece model pruned to the same pieces, if it came with one."""
    if not _has_byte_level(new_tj.get("pre_tokenizer")):
        from eliquare.vocab.unigram import slow_files as sentencepiece_files

        return sentencepiece_files(tokenizer, new_tokens, new_tj)
    model = new_tj["model"]
    merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in _merges(model))
    return {
        "vocab.json": json.dumps(model["vocab"], ensure_ascii=False).encode("utf-8"),
        "merges.txt": merges.encode("utf-8"),
    }
