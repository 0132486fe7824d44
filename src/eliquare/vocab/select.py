"""Which subwords stay: count them on the target-language corpus, keep the frequent ones (Section 5).

The paper keeps the mBERT subwords that occur in at least 0.05% of the corpus's sentences. Counting
runs on the fast tokenizer's Rust backend (``encode_batch``, parallel) and numpy (``bincount``), so a
million sentences take well under a minute on two cores (``benchmarks/vocab_selection.py``).
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from eliquare.errors import EliquareError

BATCH_SENTENCES = 8192  # sentences per encode_batch call: large enough to keep both cores busy


@dataclass
class TokenCounts:
    """What the corpus says about a vocabulary of ``vocab_size`` ids."""

    vocab_size: int
    sentences: int = 0
    words: int = 0  # whitespace-separated words
    doc_freq: np.ndarray = None  # type: ignore[assignment]  # sentences in which each id occurs
    token_freq: np.ndarray = None  # type: ignore[assignment]  # occurrences of each id
    # a uniform sample of the sentences and their token ids, for the before/after report
    sample: list[str] = field(default_factory=list)
    sample_ids: list[list[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.doc_freq is None:
            self.doc_freq = np.zeros(self.vocab_size, dtype=np.int64)
        if self.token_freq is None:
            self.token_freq = np.zeros(self.vocab_size, dtype=np.int64)


def _batches(sentences: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(sentences)
    while batch := list(itertools.islice(it, size)):
        yield batch


def count_tokens(backend, sentences: Iterable[str], *, sample_size: int = 50_000, seed: int = 0,
                 batch_size: int = BATCH_SENTENCES) -> TokenCounts:
    """Document and token frequencies of every id of ``backend`` (a ``tokenizers.Tokenizer``) on ``sentences``.

    Special tokens are not added, and truncation and padding are switched off on a copy of the
    backend, so that every token of every sentence is counted once. ``sample_size`` sentences are
    kept by reservoir sampling (fixed seed: the same corpus gives the same sample).
    """
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(backend.to_str())
    backend.no_truncation()
    backend.no_padding()
    vocab_size = backend.get_vocab_size(with_added_tokens=True)
    counts = TokenCounts(vocab_size)
    rng = random.Random(seed)
    for batch in _batches(sentences, batch_size):
        ids = [e.ids for e in backend.encode_batch_fast(batch, add_special_tokens=False)]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
        counts.token_freq += np.bincount(flat, minlength=vocab_size)
        # one (sentence, id) key per occurrence; unique keys -> each id once per sentence
        keys = np.repeat(np.arange(len(ids), dtype=np.int64), lengths) * vocab_size + flat
        counts.doc_freq += np.bincount(np.unique(keys) % vocab_size, minlength=vocab_size)
        counts.words += sum(len(s.split()) for s in batch)
        for i, sentence in enumerate(batch):  # reservoir sampling (Algorithm R)
            seen = counts.sentences + i
            if seen < sample_size:
                counts.sample.append(sentence)
                counts.sample_ids.append(ids[i])
            else:
                j = rng.randrange(seen + 1)
                if j < sample_size:
                    counts.sample[j], counts.sample_ids[j] = sentence, ids[i]
        counts.sentences += len(batch)
    if counts.sentences == 0:
        raise EliquareError("the corpus gave no sentences; give files with target-language text (see --corpus)")
    return counts


def frequency_threshold(sentences: int, *, min_fraction: float = 0.0005, min_count: int | None = None) -> int:
    """Least number of sentences a subword must occur in (``min_count`` wins over ``min_fraction``)."""
    if min_count is not None:
        if min_count < 1:
            raise EliquareError(f"min_count must be at least 1 (got {min_count})")
        return min_count
    if not 0.0 <= min_fraction <= 1.0:
        raise EliquareError(f"min_fraction must lie between 0 and 1, e.g. 0.0005 (got {min_fraction})")
    return max(1, math.ceil(min_fraction * sentences - 1e-9))


def select_ids(doc_freq: np.ndarray, required: np.ndarray, *, threshold: int, max_size: int | None = None) -> np.ndarray:
    """Mask of the ids to keep: every ``required`` id, plus the ids found in >= ``threshold`` sentences.

    With ``max_size``, only the most frequent of those (ties: lower id first) are kept, so that the
    whole vocabulary, required ids included, has at most ``max_size`` entries.
    """
    keep = required | (doc_freq >= threshold)
    if max_size is not None and keep.sum() > max_size:
        n_required = int(required.sum())
        if max_size < n_required:
            raise EliquareError(
                f"max_size {max_size} is smaller than the {n_required} tokens that must stay (special tokens and "
                f"the pieces that spell every character of the corpus); give --max-size {n_required} or more"
            )
        candidates = np.flatnonzero(keep & ~required)
        order = np.lexsort((candidates, -doc_freq[candidates]))  # by frequency, then by id
        keep = required.copy()
        keep[candidates[order[: max_size - n_required]]] = True
    return keep
