"""VocabReduce (Section 5): keep only the subwords a monolingual student needs.

- ``select``: count subwords on the corpus, pick the ones to keep; ``words``: the corpus's words and their pieces;
  ``word_by_word``: the counting shortcut that tokenises each distinct word once
- ``wordpiece``, ``unigram``, ``bpe``: one module per tokenizer family, chosen by ``families``
- ``tokenizer_json``: renumber a ``tokenizer.json`` and load it back through its own class
- ``slicing``: cut embeddings, MLM decoder and bias to the kept rows
- ``reduce``: ``reduce_vocabulary`` (Python API) and ``eliquare vocab reduce``
"""

from eliquare.vocab.reduce import (
    ReductionResult,
    format_report,
    reduce_command,
    reduce_on_corpus,
    reduce_vocabulary,
    retokenisation_notice,
    save_tokenizer,
)

__all__ = [
    "ReductionResult",
    "format_report",
    "reduce_command",
    "reduce_on_corpus",
    "reduce_vocabulary",
    "retokenisation_notice",
    "save_tokenizer",
]
