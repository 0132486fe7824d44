"""Which subwords stay: count them on the target-language corpus, keep the frequent ones (Section 5).

The paper keeps the mBERT subwords that occur in at least 0.05% of the corpus's sentences. Counting
runs on the fast tokenizer's Rust backend (``encode_batch``, parallel), once per distinct word
(``eliquare.vocab.word_by_word``), and numpy (``bincount``), so a million sentences take well under a minute on two
cores (``benchmarks/vocab_selection.py``).

The count also keeps the corpus's words (``eliquare.vocab.words.WordTable``: each distinct word with its frequency
and its piece ids), from which ``select_by_coverage`` keeps the pieces that leave a stated share of the word tokens
tokenised as the full vocabulary tokenises them, and ``WordTable.shares`` says which share a selection leaves
unchanged.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from eliquare.config import check_coverage
from eliquare.errors import EliquareError
from eliquare.vocab.word_by_word import WordByWord, full_pipeline, word_by_word_is_exact
from eliquare.vocab.words import SentenceWords, WordTable

BATCH_SENTENCES = 8192  # sentences per encode_batch call: large enough to keep both cores busy
_CHECKED_SENTENCES = 1000  # sentences of the first batch counted both ways, word by word and whole


@dataclass
class TokenCounts:
    """What the corpus says about a vocabulary of ``vocab_size`` ids."""

    vocab_size: int
    sentences: int = 0
    words: int = 0  # whitespace-separated words
    doc_freq: np.ndarray = field(init=False)  # sentences in which each id occurs
    token_freq: np.ndarray = field(init=False)  # occurrences of each id
    # a uniform sample of the sentences and their token ids, for the before/after report
    sample: list[str] = field(default_factory=list)
    sample_ids: list[list[int]] = field(default_factory=list)
    word_table: WordTable | None = None  # the corpus's words and their pieces

    def __post_init__(self) -> None:
        self.doc_freq = np.zeros(self.vocab_size, dtype=np.int64)
        self.token_freq = np.zeros(self.vocab_size, dtype=np.int64)

    def add(
        self, batch: list[str], sentence: np.ndarray, tokens: np.ndarray, rng: random.Random, sample_size: int
    ) -> None:
        """Count one batch: ``tokens`` are its token ids in order, ``sentence`` the sentence of each."""
        vocab_size = self.vocab_size
        self.token_freq += np.bincount(tokens, minlength=vocab_size)
        # one (sentence, id) key per occurrence; unique keys -> each id once per sentence
        keys = np.sort(sentence * vocab_size + tokens)  # sort + compare: faster than np.unique here
        first = np.ones(len(keys), dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        self.doc_freq += np.bincount(keys[first] % vocab_size, minlength=vocab_size)
        self.words += sum(len(s.split()) for s in batch)
        ends = np.cumsum(np.bincount(sentence, minlength=len(batch)))
        for i, s in enumerate(batch):  # reservoir sampling (Algorithm R)
            seen = self.sentences + i
            slot = seen if seen < sample_size else rng.randrange(seen + 1)
            if slot < sample_size:
                ids = tokens[ends[i - 1] if i else 0 : ends[i]].tolist()
                if slot == len(self.sample):
                    self.sample.append(s)
                    self.sample_ids.append(ids)
                else:
                    self.sample[slot], self.sample_ids[slot] = s, ids
        self.sentences += len(batch)


def _batches(sentences: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(sentences)
    while batch := list(itertools.islice(it, size)):
        yield batch


def _untruncated(backend):
    """``backend``, or a copy of it with truncation and padding switched off where either is set."""
    from tokenizers import Tokenizer

    if backend.truncation is not None or backend.padding is not None:
        backend = Tokenizer.from_str(backend.to_str())
        backend.no_truncation()
        backend.no_padding()
    return backend


def _agrees_with_full_pipeline(backend, batch: list[str], sentence: np.ndarray, tokens: np.ndarray) -> bool:
    """Whether the word-by-word ids of the first sentences of ``batch`` are the full pipeline's."""
    check = min(len(batch), _CHECKED_SENTENCES)
    cut = int(np.searchsorted(sentence, check))
    full_sentence, full_tokens = full_pipeline(backend, batch[:check])
    return np.array_equal(full_sentence, sentence[:cut]) and np.array_equal(full_tokens, tokens[:cut])


def count_tokens(
    backend,
    sentences: Iterable[str],
    *,
    sample_size: int = 50_000,
    seed: int = 0,
    batch_size: int = BATCH_SENTENCES,
    word_by_word: bool = True,
    tokenizer_json: dict | None = None,
) -> TokenCounts:
    """Document and token frequencies of every id of ``backend`` (a ``tokenizers.Tokenizer``) on ``sentences``.

    Special tokens are not added, and truncation and padding (if set) are switched off on a copy of
    the backend, so that every token of every sentence is counted once. ``sample_size`` sentences are
    kept by reservoir sampling (fixed seed: the same corpus gives the same sample). With
    ``word_by_word``, distinct words are tokenised once where that gives the same ids
    (``eliquare.vocab.word_by_word``). ``tokenizer_json``: the backend's parsed ``to_str()``, if the caller has it
    already. The counts' ``word_table`` holds the corpus's words and their pieces.
    """
    backend = _untruncated(backend)
    vocab_size = backend.get_vocab_size(with_added_tokens=True)
    tj = tokenizer_json if tokenizer_json is not None else json.loads(backend.to_str())
    words = WordByWord(backend, tj) if word_by_word and word_by_word_is_exact(tj) else None
    whole = SentenceWords()  # the words of sentences counted sentence by sentence
    counts = TokenCounts(vocab_size)
    rng = random.Random(seed)
    for batch in _batches(sentences, batch_size):
        if words is not None:
            sentence, tokens = words.encode(batch)
            # check the shortcut against the full pipeline once
            if counts.sentences == 0 and not _agrees_with_full_pipeline(backend, batch, sentence, tokens):
                print(
                    "vocab: word-by-word counting disagrees with this tokenizer; counting sentence by "
                    "sentence (slower)",
                    file=sys.stderr,
                )
                words = None
        if words is None:
            sentence, tokens = full_pipeline(backend, batch, whole)
        counts.add(batch, sentence, tokens, rng, sample_size)
    if counts.sentences == 0:
        raise EliquareError("the corpus gave no sentences; give files with target-language text (see --corpus)")
    tables = ([words.table()] if words is not None else []) + [whole.table()]
    counts.word_table = WordTable.concatenate(tables)
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


def select_ids(
    doc_freq: np.ndarray, required: np.ndarray, *, threshold: int, max_size: int | None = None
) -> np.ndarray:
    """Mask of the ids to keep: every ``required`` id, plus the ids found in >= ``threshold`` sentences.

    With ``max_size``, only the most frequent of those (ties: lower id first) are kept, so that the
    whole vocabulary, required ids included, has at most ``max_size`` entries.
    """
    keep = required | (doc_freq >= threshold)
    if max_size is not None and keep.sum() > max_size:
        n_required = int(required.sum())
        _check_max_size(max_size, n_required)
        candidates = np.flatnonzero(keep & ~required)
        order = np.lexsort((candidates, -doc_freq[candidates]))  # by frequency, then by id
        keep = required.copy()
        keep[candidates[order[: max_size - n_required]]] = True
    return keep


def _check_max_size(max_size: int, n_required: int) -> None:
    if max_size < n_required:
        raise EliquareError(
            f"max_size {max_size} is smaller than the {n_required} tokens that must stay (special tokens and "
            f"the pieces that spell every character of the corpus); give --max-size {n_required} or more"
        )


def _piece_index(words: WordTable, keep: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each entry's distinct pieces and each piece's entries, for the greedy cover: the piece ids entry by entry
    (``pair_id``, entry ``e``'s from ``entry_start[e]`` to ``entry_start[e + 1]``), the same pairs by id
    (``id_sorted``, ``entry_by_id``), and how many pieces each entry lacks under ``keep`` (``missing``)."""
    n, vocab = len(words.text), len(keep)
    # each entry's distinct pieces: (entry, id) pairs, sorted by entry, then by id
    pairs = np.unique(np.repeat(np.arange(n, dtype=np.int64), words.lengths) * vocab + words.ids)
    pair_entry, pair_id = pairs // vocab, pairs % vocab
    entry_start = np.searchsorted(pair_entry, np.arange(n + 1))
    by_id = np.argsort(pair_id, kind="stable")  # the entries that hold each id
    id_sorted, entry_by_id = pair_id[by_id], pair_entry[by_id]
    missing = np.bincount(pair_entry[~keep[pair_id]], minlength=n)
    return pair_id, entry_start, id_sorted, entry_by_id, missing


def select_by_coverage(
    words: WordTable,
    required: np.ndarray,
    *,
    coverage: float,
    max_size: int | None = None,
    order: str = "gain",
) -> np.ndarray:
    """Mask of the ids to keep: every ``required`` id, plus the pieces of enough words that at least ``coverage`` of
    the corpus's word tokens (counted with frequency) keep every piece, so are tokenised unchanged.

    Words are added greedily. ``order="gain"`` takes next the word with the most occurrences per piece it still
    lacks (set-cover's greedy rule: a frequent word whose pieces other words brought in costs nothing), adding
    with it every word its pieces complete; ``order="frequency"`` takes the most frequent word not yet covered.
    Either way the words come in one fixed order, whatever ``coverage`` is, so a higher coverage keeps a superset
    of the ids of a lower one. With ``max_size`` a word whose pieces would not fit is passed over, and the
    coverage reached may be lower than asked (``WordTable.shares`` says which)."""
    check_coverage(coverage)
    if order not in ("gain", "frequency"):
        raise ValueError(f"order must be 'gain' or 'frequency', not {order!r}")
    keep = required.copy()
    if max_size is not None:
        _check_max_size(max_size, int(keep.sum()))
    freq = words.freq
    pair_id, entry_start, id_sorted, entry_by_id, missing = _piece_index(words, keep)
    total = int(freq.sum())
    target = math.ceil(coverage * total - 1e-9 * max(total, 1))
    covered = int(freq[missing == 0].sum())
    f = freq.tolist()
    lacking = missing.tolist()

    def priority(e: int) -> tuple:
        return (-f[e] / lacking[e], -f[e], e, lacking[e]) if order == "gain" else (-f[e], e, lacking[e])

    heap = [priority(e) for e in np.flatnonzero(missing > 0).tolist()]
    heapq.heapify(heap)
    size = int(keep.sum())
    while covered < target and heap:
        item = heapq.heappop(heap)
        e, when = item[-2], item[-1]
        if lacking[e] == 0 or (order == "gain" and when != lacking[e]):
            continue  # covered meanwhile, or an older priority of a word that has since been pushed again
        new = [i for i in pair_id[entry_start[e] : entry_start[e + 1]].tolist() if not keep[i]]
        if max_size is not None and size + len(new) > max_size:
            continue
        for i in new:
            keep[i] = True
            size += 1
            lo, hi = np.searchsorted(id_sorted, [i, i + 1])
            for other in entry_by_id[lo:hi].tolist():
                lacking[other] -= 1
                if lacking[other] == 0:
                    covered += f[other]
                elif order == "gain":
                    heapq.heappush(heap, priority(other))
    return keep
