"""Token-per-line files (CoNLL-U, CoNLL-2003 style ``token ... TAG``, ``idx token tag``): the lines
of each sentence, split into columns.

The corpus stage reads the words of these files as text, the evaluation reads their labels; both
walk the file with ``read_sentences``. A blank line ends a sentence; ``#`` lines are CoNLL-U
comments; CoNLL-U multi-word token ranges (``1-2``) and empty nodes (``1.1``) are not syntactic
words and are skipped (the words of the range follow on their own lines).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

CONLLU_COLUMNS = 10  # ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC

_NODE_ID = re.compile(r"\d+[-.]\d+")

Sentence = list[tuple[int, list[str]]]  # (1-based line number, columns) of each word line


def is_node_id(word_id: str) -> bool:
    """A CoNLL-U multi-word token range (``1-2``) or empty node (``1.1``)."""
    return _NODE_ID.fullmatch(word_id) is not None


def split_columns(line: str, conllu: bool = False) -> list[str]:
    """CoNLL-U splits on tabs only; other files on tabs when the line has one, else on whitespace."""
    return line.split("\t") if conllu or "\t" in line else line.split()


def read_sentences(
    lines: Iterable[str],
    *,
    conllu: bool = False,
    comments: bool = True,
    skip_nodes: bool = True,
    docstart: bool = False,
) -> Iterator[Sentence]:
    """The sentences of a token-per-line file, streamed; empty sentences are not yielded.

    - ``conllu``: columns are tab-separated only, and a range or empty node is skipped only when its
      line has the 10 columns (a malformed one is yielded, for the caller to report);
    - ``comments``: skip lines starting with ``#`` (off for BIO files, where ``#`` can be a token);
    - ``skip_nodes``: skip multi-word ranges and empty nodes (a line of 2+ columns whose first is
      ``1-2`` or ``1.1``);
    - ``docstart``: a ``-DOCSTART-`` line ends a sentence (CoNLL-2003).
    """
    sentence: Sentence = []
    for n, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            if sentence:
                yield sentence
            sentence = []
            continue
        if comments and line.startswith("#"):
            continue
        cols = split_columns(line, conllu)
        if docstart and cols[0].strip().startswith("-DOCSTART-"):
            if sentence:
                yield sentence
            sentence = []
            continue
        if skip_nodes and len(cols) >= 2 and is_node_id(cols[0]) and (not conllu or len(cols) == CONLLU_COLUMNS):
            continue
        sentence.append((n, cols))
    if sentence:
        yield sentence
