"""The corpus's words and their pieces (``WordTable``), which VocabReduce's coverage selection reads: each distinct
whitespace-separated word with how often it occurs and the piece ids it was tokenised into, and which share of the
word tokens a selection of pieces leaves tokenised as the full vocabulary tokenises them (``WordTable.shares``).
``SentenceWords`` collects them from sentences tokenised whole, by the tokens' offsets."""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass

import numpy as np


@dataclass
class WordTable:
    """The corpus's words (whitespace-separated, as ``TokenCounts.words`` counts them), each distinct word in each
    tokenisation it got once: ``text``, how often it occurs (``freq``) and its piece ids (``lengths`` of ``ids``).

    A word's pieces are those of its pre-tokens (a BERT pre-tokenizer splits "mtoto," into "mtoto" and ","). The
    families keep a word's tokenisation exactly when all of its pieces stay (``eliquare.vocab.families``), and a
    word that lost one is tokenised otherwise, so ``unchanged`` is the word's fate under a selection, not an
    estimate."""

    text: list[str]
    freq: np.ndarray  # occurrences of each entry
    lengths: np.ndarray  # pieces of each entry
    ids: np.ndarray  # the pieces of every entry, one after the other

    @property
    def tokens(self) -> int:
        return int(self.freq.sum())

    def type_of(self) -> np.ndarray:
        """The word type (distinct text) of each entry: a word can get two tokenisations (a byte-level BPE tokenises
        a sentence's first word without the space mark)."""
        types: dict[str, int] = {}
        return np.fromiter((types.setdefault(t, len(types)) for t in self.text), dtype=np.int64, count=len(self.text))

    def unchanged(self, keep: np.ndarray) -> np.ndarray:
        """Per entry: every piece kept (``keep``: a mask over the ids), so that the word is tokenised unchanged."""
        entry = np.repeat(np.arange(len(self.text), dtype=np.int64), self.lengths)
        lost = np.bincount(entry[~keep[self.ids]], minlength=len(self.text))
        return lost == 0

    def shares(self, keep: np.ndarray) -> dict:
        """Word tokens (counted with frequency) and word types tokenised unchanged; a type counts as unchanged when
        every one of its occurrences is."""
        same = self.unchanged(keep)
        types = self.type_of()
        n_types = int(types.max()) + 1 if len(types) else 0
        changed_type = np.zeros(n_types, dtype=bool)
        changed_type[types[~same]] = True
        return {
            "word_tokens": self.tokens,
            "word_types": n_types,
            "unchanged_tokens": int(self.freq[same].sum()),
            "unchanged_types": int(n_types - changed_type.sum()),
        }

    @classmethod
    def concatenate(cls, tables: list[WordTable]) -> WordTable:
        return cls(
            [t for table in tables for t in table.text],
            np.concatenate([t.freq for t in tables]).astype(np.int64),
            np.concatenate([t.lengths for t in tables]).astype(np.int64),
            np.concatenate([t.ids for t in tables]).astype(np.int64),
        )


class SentenceWords:
    """The words of sentences tokenised whole (the full pipeline): each token goes to the whitespace-separated word
    its text starts in (a Metaspace "▁" standing alone, which starts at the space, to the word after it)."""

    _NON_SPACE = re.compile(r"\S+")

    def __init__(self) -> None:
        self.index: dict[tuple[str, tuple[int, ...]], int] = {}
        self.text: list[str] = []
        self.ids: list[tuple[int, ...]] = []
        self.freq: list[int] = []

    def add(self, sentence: str, ids: list[int], offsets: list[tuple[int, int]]) -> None:
        spans = list(self._NON_SPACE.finditer(sentence))
        if not spans:
            return
        ends = [m.end() for m in spans]
        per_word: list[list[int]] = [[] for _ in spans]
        for token_id, (start, _) in zip(ids, offsets):
            per_word[min(bisect.bisect_right(ends, start), len(spans) - 1)].append(token_id)
        for m, word_ids in zip(spans, per_word):
            key = (m.group(), tuple(word_ids))
            n = self.index.get(key)
            if n is None:
                n = self.index[key] = len(self.text)
                self.text.append(key[0])
                self.ids.append(key[1])
                self.freq.append(0)
            self.freq[n] += 1

    def table(self) -> WordTable:
        return WordTable(
            list(self.text),
            np.asarray(self.freq, dtype=np.int64),
            np.fromiter(map(len, self.ids), dtype=np.int64, count=len(self.ids)),
            np.fromiter(itertools.chain.from_iterable(self.ids), dtype=np.int64, count=sum(map(len, self.ids))),
        )
