"""Token ids of sentences from the cached ids of their words: a shortcut for counting subwords on a large corpus
(``eliquare.vocab.select.count_tokens``), exact where the tokenizer's pipeline never looks across a single space.

Words repeat (Zipf): a million sentences hold ~15 M words but only some hundred thousand distinct ones, so
tokenising each distinct word once and reusing its ids takes about half the CPU time of running the whole pipeline
on every sentence. That is exact when the pipeline never looks across a single space: per-character normalisers
and pre-tokenizers that split at spaces (Metaspace, BERT, whitespace, GPT-2 byte-level). Then a sentence's ids are
its first word's ids followed by those of " " + each later word. Sentences with other whitespace, double spaces or
added-token text take the full pipeline (``full_pipeline``); the caller checks the first batch against the full
pipeline."""

from __future__ import annotations

import itertools
import re

import numpy as np

from eliquare.vocab.words import SentenceWords, WordTable

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


def word_by_word_is_exact(tj: dict) -> bool:
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
        p = p or {}
        kind = p.get("type")
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


def full_pipeline(backend, batch: list[str], words: SentenceWords | None = None) -> tuple[np.ndarray, np.ndarray]:
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


class WordByWord:
    """Token ids of sentences from the cached ids of their words (see the module docstring)."""

    _WORD = re.compile(r"[\n ][^ \n]+")  # "\nw": first word of a sentence, " w": a later one

    def __init__(self, backend, tj: dict) -> None:
        self.backend = backend
        self.index: dict[str, int] = {}  # "\nw" / " w" -> word number
        self.starts, self.lengths, self.ids = _Growing(), _Growing(), _Growing()
        self.freq = np.zeros(0, dtype=np.int64)  # occurrences of each word number
        self.whole = SentenceWords()  # the words of the sentences that take the full pipeline
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
            rest_sentence, rest_tokens = full_pipeline(self.backend, [batch[i] for i in unsafe], self.whole)
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
