"""The corpus stage (Section 4 of the paper): target-language text -> clean sentences -> 90:10 split -> token ids.

- ``read``: files, directories, compressed files and Wikipedia dumps -> clean sentences (``iter_sentences``),
  and the hash that de-duplicates and splits them (``sentence_hash``, ``is_validation``)
- ``prepare``: de-duplicate, split and tokenise into cached Arrow files (``prepare_corpus``), with the on-disk
  de-duplication in ``dedup`` and the cache entry (key, lock, completeness, loading) in ``cache_entry``
"""

from eliquare.corpus.prepare import PreparedCorpus, default_cache_dir, prepare_corpus
from eliquare.corpus.read import (
    CorpusStats,
    clean_sentence,
    expand_paths,
    is_validation,
    iter_sentences,
    iter_texts,
    sentence_hash,
    split_sentences,
    wikitext_to_text,
)

__all__ = [
    "CorpusStats",
    "PreparedCorpus",
    "clean_sentence",
    "default_cache_dir",
    "expand_paths",
    "is_validation",
    "iter_sentences",
    "iter_texts",
    "prepare_corpus",
    "sentence_hash",
    "split_sentences",
    "wikitext_to_text",
]
