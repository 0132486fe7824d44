"""SentencePiece unigram (XLM-R, multilingual-e5): ``tokenizer.json`` and ``sentencepiece.bpe.model``.

The unigram model segments with Viterbi over the pieces it has; a character without a piece is
unknown, so every character seen in the corpus keeps its single-character piece (and, with byte
fallback, the 256 byte pieces stay). Piece scores are kept as they are, so a sentence whose best
segmentation uses only kept pieces is segmented identically. The SentencePiece model file, where the
tokenizer came with one, is pruned to the same pieces.
"""

from __future__ import annotations

import os
import re

import numpy as np

from eliquare.errors import EliquareError

MODEL_TYPE = "Unigram"
_BYTE_PIECE = re.compile(r"^<0x[0-9A-F]{2}>$")


def check(tj: dict) -> None:
    pass


def required_ids(tj: dict, tokens: list[str | None], seen: np.ndarray, added: np.ndarray) -> np.ndarray:
    """The single-character piece of every character of every (non-added) piece seen in the corpus."""
    token_id = {t: i for i, t in enumerate(tokens) if t is not None}
    chars: set[str] = set()
    for i in np.flatnonzero(seen & ~added):
        token = tokens[i]
        assert token is not None  # an id seen in the corpus has a token
        chars.update(token)
    required = np.zeros(len(tokens), dtype=bool)
    required[[token_id[c] for c in chars if c in token_id]] = True
    if tj["model"].get("byte_fallback"):
        required[[i for i, t in enumerate(tokens) if t is not None and _BYTE_PIECE.match(t)]] = True
    return required


def close(tj: dict, keep: np.ndarray, tokens: list[str | None]) -> np.ndarray:
    return keep  # unigram pieces are independent of each other


def reduce_model(model: dict, new_id: np.ndarray) -> dict:
    vocab = model["vocab"]
    kept = [i for i in range(len(vocab)) if new_id[i] >= 0]
    if [int(new_id[i]) for i in kept] != list(range(len(kept))):
        raise EliquareError("unigram pieces must keep their order and come before the added tokens")
    unk = model.get("unk_id")
    return dict(model, vocab=[vocab[i] for i in kept], unk_id=None if unk is None else int(new_id[unk]))


SPM_FILE_NAMES = ("sentencepiece.bpe.model", "sentencepiece.model", "spiece.model", "tokenizer.model")


def sentencepiece_file(tokenizer) -> str | None:
    """The SentencePiece model the tokenizer came with: its ``vocab_file``, or one beside its ``tokenizer.json``."""
    candidates = [getattr(tokenizer, "vocab_file", None)]
    if os.path.isdir(str(tokenizer.name_or_path)):
        candidates += [os.path.join(tokenizer.name_or_path, name) for name in SPM_FILE_NAMES]
    return next((c for c in candidates if isinstance(c, str) and c.endswith(".model") and os.path.isfile(c)), None)


def slow_files(tokenizer, new_tokens: list[str], new_tj: dict) -> dict[str, bytes]:
    """The tokenizer's SentencePiece model (``sentencepiece.bpe.model`` for XLM-R) with the same pieces, if it had
    one."""
    source = sentencepiece_file(tokenizer)
    if source is None:
        return {}
    from sentencepiece import sentencepiece_model_pb2 as sp

    proto = sp.ModelProto()
    with open(source, "rb") as f:
        proto.ParseFromString(f.read())
    keep = set(new_tokens)
    always = (
        sp.ModelProto.SentencePiece.CONTROL,
        sp.ModelProto.SentencePiece.UNKNOWN,
        sp.ModelProto.SentencePiece.BYTE,
    )
    old = list(proto.pieces)
    kept = [p for p in old if p.type in always or p.piece in keep]
    position = {p.piece: i for i, p in enumerate(kept)}
    spec = proto.trainer_spec
    for name in ("unk_id", "bos_id", "eos_id", "pad_id"):  # positions of the control pieces
        if getattr(spec, name) >= 0:
            setattr(spec, name, position[old[getattr(spec, name)].piece])
    del proto.pieces[:]
    proto.pieces.extend(kept)
    spec.vocab_size = len(kept)
    return {os.path.basename(source): proto.SerializeToString(deterministic=True)}
