"""VocabReduce (Section 5): keep only the subwords a monolingual student needs.

- ``select``: count subwords on the corpus, pick the ones to keep; ``words``: the corpus's words and their pieces;
  ``word_by_word``: the counting shortcut that tokenises each distinct word once
- ``wordpiece``, ``unigram``, ``bpe``: one module per tokenizer family, chosen by ``families``
- ``tokenizer_json``: renumber a ``tokenizer.json`` and load it back through its own class
- ``slicing``: cut embeddings, MLM decoder and bias to the kept rows
- ``choose``: a tokenizer's ids counted on the corpus and chosen (threshold or coverage, one language or several)
- ``report``: what a reduction changed (``vocab_report.json``, ``format_report``, ``retokenisation_notice``)
- ``reduce``: ``reduce_vocabulary`` (Python API) and ``eliquare vocab reduce``
"""

from eliquare.vocab.reduce import (
    ReductionResult,
    reduce_command,
    reduce_on_corpus,
    reduce_vocabulary,
    save_tokenizer,
)
from eliquare.vocab.report import format_report, retokenisation_notice

__all__ = [
    "ReductionResult",
    "format_report",
    "reduce_command",
    "reduce_on_corpus",
    "reduce_vocabulary",
    "retokenisation_notice",
    "save_tokenizer",
]
