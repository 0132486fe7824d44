"""The registry of tokenizer families, keyed by the ``model.type`` of ``tokenizer.json``.

Each family module gives: ``check`` (refuse variants it cannot reduce), ``required_ids`` (pieces
that keep every character of the corpus spellable), ``close`` (pieces the kept ones depend on),
``reduce_model`` (the smaller model section) and ``slow_files`` (vocabulary files for slow tokenizers).
"""

from __future__ import annotations

from types import ModuleType

from eliquare.errors import EliquareError
from eliquare.vocab import bpe, unigram, wordpiece

FAMILIES: dict[str, ModuleType] = {m.MODEL_TYPE: m for m in (wordpiece, unigram, bpe)}
SUPPORTED = "WordPiece (BERT, mBERT), Unigram (XLM-R, multilingual-e5) and byte-level BPE (RoBERTa, GPT-2)"


def family_for(tj: dict) -> ModuleType:
    kind = tj.get("model", {}).get("type")
    if kind not in FAMILIES:
        raise EliquareError(f"tokenizer type '{kind}' cannot be reduced; supported: {SUPPORTED}")
    family = FAMILIES[kind]
    family.check(tj)
    return family
