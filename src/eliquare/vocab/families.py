"""The registry of tokenizer families, keyed by the ``model.type`` of ``tokenizer.json``.

Each family module gives: ``check`` (refuse variants it cannot reduce), ``required_ids`` (pieces
that keep every character of the corpus spellable), ``close`` (pieces the kept ones depend on),
``reduce_model`` (the smaller model section) and ``slow_files`` (vocabulary files for slow tokenizers).
"""

from __future__ import annotations

from types import ModuleType

from eliquare.errors import EliquareError
from eliquare.vocab import bpe, unigram, wordpiece

TOKENIZER_FAMILIES: dict[str, ModuleType] = {m.MODEL_TYPE: m for m in (wordpiece, unigram, bpe)}
SUPPORTED = (
    "WordPiece (BERT, mBERT, DistilBERT, ELECTRA), Unigram (XLM-R, multilingual-e5, mDeBERTa) and byte-level "
    "BPE (RoBERTa, GPT-2, ModernBERT) or SentencePiece-style BPE (Gemma, Llama 2)"
)


def tokenizer_family(tj: dict) -> ModuleType:
    """The family module of a ``tokenizer.json``, after checking that it can reduce this variant."""
    kind = tj.get("model", {}).get("type")
    if kind not in TOKENIZER_FAMILIES:
        raise EliquareError(f"tokenizer type '{kind}' cannot be reduced; supported: {SUPPORTED}")
    family = TOKENIZER_FAMILIES[kind]
    family.check(tj)
    return family
