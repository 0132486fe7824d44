"""Which subwords stay: count them on the target-language corpus, keep the frequent ones (Section 5).

The paper keeps the mBERT subwords that occur in at least 0.05% of the corpus's sentences. Counting
runs on the fast tokenizer's Rust backend (``encode_batch``, parallel), once per distinct word, and
numpy (``bincount``), so a million sentences take well under a minute on two cores
(``benchmarks/vocab_selection.py``).

The count also keeps the corpus's words (``WordTable``: each distinct word with its frequency and its piece ids),
from which ``select_by_coverage`` keeps the pieces that leave a stated share of the word tokens tokenised as the
full vocabulary tokenises them, and ``WordTable.shares`` says which share a selection leaves unchanged.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from eliquare.config import check_coverage
from eliquare.errors import EliquareError

BATCH_SENTENCES = 8192  # sentences per encode_batch call: large enough to keep both cores busy


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
        """Per entry: every piece kept (``keep``: a mask over the ids), so that the word is tokenised as before."""
        entry = np.repeat(np.arange(len(self.text), dtype=np.int64), self.lengths)
        lost = np.bincount(entry[~keep[self.ids]], minlength=len(self.text))
        return lost == 0

    def shares(self, keep: np.ndarray) -> dict:
        """Word tokens (counted with frequency) and word types tokenised as before; a type counts as unchanged when
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


class _SentenceWords:
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


def _batches(sentences: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(sentences)
    while batch := list(itertools.islice(it, size)):
        yield batch


# ---------------------------------------------------------------------------------------------
# Counting word by word. Words repeat (Zipf): a million sentences hold ~15 M words but only some
# hundred thousand distinct ones, so tokenising each distinct word once and reusing its ids takes about
# half the CPU time of running the whole pipeline on every sentence. That is exact when the pipeline
# never looks across a single space: per-character normalisers and pre-tokenizers that split at
# spaces (Metaspace, BERT, whitespace, GPT-2 byte-level). Then a sentence's ids are its first word's
# ids followed by those of " " + each later word. Sentences with other whitespace, double spaces or
# added-token text take the full pipeline; the first batch is checked against the full pipeline.

_PER_CHARACTER_NORMALIZERS = {
    "Precompiled",
    "NFC",
    "NFD",
    "NFKC",
    "NFKD",
    "Lowercase",
    "StripAccents",
    "BertNormalizer",
    "Replace",
    "Sequence",
}
_SPACE_SPLITTING_PRE_TOKENIZERS = {
    "Metaspace",
    "BertPreTokenizer",
    "WhitespaceSplit",
    "Whitespace",
    "ByteLevel",
    "Punctuation",
    "Digits",
    "Sequence",
}
_SPACE_RUN_PATTERNS = {" {2,}", r"\s+", " +", r"\s{2,}"}  # no-ops on text with single spaces only
_CHECKED_SENTENCES = 1000


def _word_by_word_is_exact(tj: dict) -> bool:
    def normalizer_ok(n: dict | None) -> bool:
        if n is None:
            return True
        kind = n.get("type")
        if kind == "Sequence":
            return all(normalizer_ok(c) for c in n.get("normalizers", []))
        if kind == "Replace":
            pattern = n.get("pattern", {})
            return ("String" in pattern and " " not in pattern["String"]) or pattern.get("Regex") in _SPACE_RUN_PATTERNS
        return kind in _PER_CHARACTER_NORMALIZERS

    def pre_tokenizer_ok(p: dict | None) -> bool:
        kind = (p or {}).get("type")
        if kind == "Sequence":
            return all(pre_tokenizer_ok(c) for c in p.get("pretokenizers", []))
        if kind == "Metaspace" and p.get("split") is False or kind == "ByteLevel" and p.get("use_regex") is False:
            return False
        return kind in _SPACE_SPLITTING_PRE_TOKENIZERS

    return normalizer_ok(tj.get("normalizer")) and pre_tokenizer_ok(tj.get("pre_tokenizer"))


class _Growing:
    """A numpy int64 array that grows by appending (amortised doubling)."""

    def __init__(self) -> None:
        self.data = np.zeros(1024, dtype=np.int64)
        self.size = 0

    def extend(self, values: np.ndarray) -> None:
        if self.size + len(values) > len(self.data):
            self.data = np.resize(self.data, max(2 * len(self.data), self.size + len(values)))
        self.data[self.size : self.size + len(values)] = values
        self.size += len(values)

    def view(self) -> np.ndarray:
        return self.data[: self.size]


def _full_pipeline(backend, batch: list[str], words: _SentenceWords | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(sentence index, token id) of every token of ``batch``, in order, through the whole backend; ``words``
    collects the sentences' words (from the tokens' offsets)."""
    if words is None:
        ids = [e.ids for e in backend.encode_batch_fast(batch, add_special_tokens=False)]
    else:
        encodings = backend.encode_batch(batch, add_special_tokens=False)
        ids = [e.ids for e in encodings]
        for sentence, e in zip(batch, encodings):
            words.add(sentence, e.ids, e.offsets)
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
    return np.repeat(np.arange(len(ids), dtype=np.int64), lengths), flat


class _WordByWord:
    """Token ids of sentences from the cached ids of their words (see the comment above)."""

    _WORD = re.compile(r"[\n ][^ \n]+")  # "\nw": first word of a sentence, " w": a later one

    def __init__(self, backend, tj: dict) -> None:
        self.backend = backend
        self.index: dict[str, int] = {}  # "\nw" / " w" -> word number
        self.starts, self.lengths, self.ids = _Growing(), _Growing(), _Growing()
        self.freq = np.zeros(0, dtype=np.int64)  # occurrences of each word number
        self.whole = _SentenceWords()  # the words of the sentences that take the full pipeline
        self.normalizer = backend.normalizer
        self.checked: set[str] = set()  # characters looked at so far
        # whitespace other than " ", and characters the normaliser turns into whitespace (such a space can
        # merge with the next word's, e.g. by a " {2,}" -> " " normaliser)
        self.unsafe_chars: set[str] = set()
        self.added = [t["content"] for t in tj.get("added_tokens", [])]
        self._compile()

    def _compile(self) -> None:
        # a sentence takes the full pipeline if it is empty, has leading, trailing or double spaces,
        # an unsafe character or the text of an added token
        chars = ["[" + "".join(map(re.escape, sorted(self.unsafe_chars))) + "]"] if self.unsafe_chars else []
        self.unsafe = re.compile(
            "|".join([r"^$", "  ", "^ ", " $", *map(re.escape, self.added), *chars]), re.IGNORECASE
        )

    def _suspicious(self, batch: list[str], joined: str) -> bool:
        """Whether any sentence of the batch may be unsafe (cheap whole-batch tests first)."""
        chars = set(joined)
        new = chars.difference(self.checked)
        if new:
            self.checked |= new
            unsafe = {
                c
                for c in new
                if c not in " \n"
                and (
                    c.isspace()
                    or self.normalizer is not None
                    and any(ch.isspace() for ch in self.normalizer.normalize_str(c))
                )
            }
            if unsafe:
                self.unsafe_chars |= unsafe
                self._compile()
        lowered = joined.lower()
        return (
            not all(batch)
            or "  " in joined
            or " \n" in joined
            or "\n " in joined
            or joined[:1] == " "
            or joined[-1:] == " "
            or joined.count("\n") != len(batch) - 1
            or not chars.isdisjoint(self.unsafe_chars)
            or any(a.lower() in lowered for a in self.added)
        )

    def _learn(self, keys: list[str]) -> None:
        new = sorted(set(keys).difference(self.index))
        if not new:
            return
        texts = [k[1:] if k[0] == "\n" else k for k in new]
        ids = [e.ids for e in self.backend.encode_batch_fast(texts, add_special_tokens=False)]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        self.starts.extend(self.ids.size + np.cumsum(lengths) - lengths)
        self.lengths.extend(lengths)
        self.ids.extend(np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum())))
        self.index.update(zip(new, range(len(self.index), len(self.index) + len(new))))

    def encode(self, batch: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(sentence index, token id) of every token of ``batch``, sorted by sentence."""
        joined = "\n".join(batch)
        unsafe = []
        if self._suspicious(batch, joined):
            unsafe = [i for i, s in enumerate(batch) if "\n" in s or self.unsafe.search(s)]
        safe = np.ones(len(batch), dtype=bool)
        safe[unsafe] = False
        safe_sentences = [s for s, ok in zip(batch, safe) if ok] if unsafe else batch
        keys = self._WORD.findall("\n" + ("\n".join(safe_sentences) if unsafe else joined))
        self._learn(keys)
        words = np.fromiter(map(self.index.__getitem__, keys), dtype=np.int64, count=len(keys))
        seen = np.bincount(words, minlength=len(self.index))
        seen[: len(self.freq)] += self.freq
        self.freq = seen
        per_sentence = (
            np.fromiter(
                map(str.count, safe_sentences, itertools.repeat(" ")), dtype=np.int64, count=len(safe_sentences)
            )
            + 1
        )
        lengths = self.lengths.view()[words]
        # positions of each word's ids in the flat array, expanded token by token
        offsets = np.repeat(self.starts.view()[words] - (np.cumsum(lengths) - lengths), lengths)
        tokens = self.ids.view()[offsets + np.arange(int(lengths.sum()))]
        sentence = np.repeat(np.repeat(np.flatnonzero(safe), per_sentence), lengths)
        if unsafe:
            rest_sentence, rest_tokens = _full_pipeline(self.backend, [batch[i] for i in unsafe], self.whole)
            sentence = np.concatenate([sentence, np.asarray(unsafe, dtype=np.int64)[rest_sentence]])
            tokens = np.concatenate([tokens, rest_tokens])
            order = np.argsort(sentence, kind="stable")
            sentence, tokens = sentence[order], tokens[order]
        return sentence, tokens

    def table(self) -> WordTable:
        """The words seen so far: each "w" / " w" key as its word, then the words of the whole sentences."""
        text: list[str] = [""] * len(self.index)
        for key, n in self.index.items():
            text[n] = key[1:]
        freq = np.zeros(len(self.index), dtype=np.int64)
        freq[: len(self.freq)] = self.freq
        cached = WordTable(text, freq, self.lengths.view().copy(), self.ids.view().copy())
        return WordTable.concatenate([cached, self.whole.table()])


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
    ``word_by_word``, distinct words are tokenised once where that gives the same ids (see above).
    ``tokenizer_json``: the backend's parsed ``to_str()``, if the caller has it already. The counts' ``word_table``
    holds the corpus's words and their pieces.
    """
    import json

    from tokenizers import Tokenizer

    if backend.truncation is not None or backend.padding is not None:
        backend = Tokenizer.from_str(backend.to_str())
        backend.no_truncation()
        backend.no_padding()
    vocab_size = backend.get_vocab_size(with_added_tokens=True)
    tj = tokenizer_json if tokenizer_json is not None else json.loads(backend.to_str())
    words = _WordByWord(backend, tj) if word_by_word and _word_by_word_is_exact(tj) else None
    whole = _SentenceWords()  # the words of sentences counted sentence by sentence
    counts = TokenCounts(vocab_size)
    rng = random.Random(seed)
    for batch in _batches(sentences, batch_size):
        if words is not None:
            sentence, tokens = words.encode(batch)
            if counts.sentences == 0:  # check the shortcut against the full pipeline once
                check = min(len(batch), _CHECKED_SENTENCES)
                cut = int(np.searchsorted(sentence, check))
                full_sentence, full_tokens = _full_pipeline(backend, batch[:check])
                if not (np.array_equal(full_sentence, sentence[:cut]) and np.array_equal(full_tokens, tokens[:cut])):
                    print(
                        "vocab: word-by-word counting disagrees with this tokenizer; counting sentence by "
                        "sentence (slower)",
                        file=sys.stderr,
                    )
                    words = None
        if words is None:
            sentence, tokens = _full_pipeline(backend, batch, whole)
        counts.token_freq += np.bincount(tokens, minlength=vocab_size)
        # one (sentence, id) key per occurrence; unique keys -> each id once per sentence
        keys = np.sort(sentence * vocab_size + tokens)  # sort + compare: faster than np.unique here
        first = np.ones(len(keys), dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        counts.doc_freq += np.bincount(keys[first] % vocab_size, minlength=vocab_size)
        counts.words += sum(len(s.split()) for s in batch)
        ends = np.cumsum(np.bincount(sentence, minlength=len(batch)))
        for i, s in enumerate(batch):  # reservoir sampling (Algorithm R)
            seen = counts.sentences + i
            slot = seen if seen < sample_size else rng.randrange(seen + 1)
            if slot < sample_size:
                ids = tokens[ends[i - 1] if i else 0 : ends[i]].tolist()
                if slot == len(counts.sample):
                    counts.sample.append(s)
                    counts.sample_ids.append(ids)
                else:
                    counts.sample[slot], counts.sample_ids[slot] = s, ids
        counts.sentences += len(batch)
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


def select_by_coverage(
    words: WordTable,
    required: np.ndarray,
    *,
    coverage: float,
    max_size: int | None = None,
    order: str = "gain",
) -> np.ndarray:
    """Mask of the ids to keep: every ``required`` id, plus the pieces of enough words that at least ``coverage`` of
    the corpus's word tokens (counted with frequency) keep every piece, so are tokenised as before.

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
    n_required = int(keep.sum())
    if max_size is not None and max_size < n_required:
        raise EliquareError(
            f"max_size {max_size} is smaller than the {n_required} tokens that must stay (special tokens and "
            f"the pieces that spell every character of the corpus); give --max-size {n_required} or more"
        )
    n, vocab = len(words.text), len(keep)
    freq = words.freq
    # each entry's distinct pieces: (entry, id) pairs, sorted by entry, then by id
    pairs = np.unique(np.repeat(np.arange(n, dtype=np.int64), words.lengths) * vocab + words.ids)
    pair_entry, pair_id = pairs // vocab, pairs % vocab
    entry_start = np.searchsorted(pair_entry, np.arange(n + 1))
    by_id = np.argsort(pair_id, kind="stable")  # the entries that hold each id
    id_sorted, entry_by_id = pair_id[by_id], pair_entry[by_id]
    missing = np.bincount(pair_entry[~keep[pair_id]], minlength=n)
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
