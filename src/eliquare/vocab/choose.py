"""Which ids of a tokenizer stay (Section 5): the subwords and words of a corpus counted once for the tokenizer
(``count_vocabulary``, with the ids that always stay: special tokens, added tokens and the pieces that spell every
character of the corpus), then chosen by a threshold of sentences or by the share of word tokens left tokenised as
the full vocabulary tokenises them, and closed over what the tokenizer's family needs to tokenise with them
(``choose``). Several languages are chosen on one by one, so that a smaller language keeps its own subwords.
``eliquare.vocab.select`` holds the counting and the two rules; this module applies them to a tokenizer."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from eliquare.errors import EliquareError
from eliquare.vocab.families import tokenizer_family
from eliquare.vocab.select import (
    TokenCounts,
    WordTable,
    count_tokens,
    frequency_threshold,
    select_by_coverage,
    select_ids,
)
from eliquare.vocab.tokenizer_json import (
    added_token_mask,
    id_to_token,
    tokenizer_json,
)


@dataclass
class Counted:
    """What a corpus says about a tokenizer's ids, before any choice (``count_vocabulary``)."""

    family: ModuleType  # the family module (eliquare.vocab.wordpiece, .unigram or .bpe)
    tokenizer_json: dict
    tokens: list  # token string of every old id
    counts: TokenCounts  # all languages together
    required: np.ndarray  # bool per old id: special tokens and character pieces
    languages: dict[str, TokenCounts] | None = None  # several languages: each one's own counts


@dataclass
class Selection:
    """Which ids of a tokenizer stay, and the counts they were chosen from."""

    family: ModuleType
    tokenizer_json: dict
    tokens: list
    counts: TokenCounts
    threshold: int | None  # least number of sentences a kept subword occurs in (None: chosen by coverage)
    required: np.ndarray
    keep: np.ndarray  # bool per old id
    languages: dict | None = None  # several languages: each one's sentences, threshold and the ids it alone keeps
    chosen: np.ndarray | None = None  # bool per old id: what the rule picked (threshold or coverage), before closure
    coverage: float | None = None  # the share of word tokens asked to stay unchanged (None: by threshold)

    @property
    def kept_ids(self) -> np.ndarray:
        return np.flatnonzero(self.keep)


def count_vocabulary(tokenizer, sentences, *, report_sentences: int = 50_000) -> Counted:
    """Count the subwords (and words) of ``tokenizer`` on ``sentences`` (or ``{language: sentences}``), and find the
    ids that always stay; ``choose`` then picks the rest, as often as wanted without counting again."""
    tj = tokenizer_json(tokenizer)
    family = tokenizer_family(tj)
    tokens = id_to_token(tokenizer)
    languages = None
    if isinstance(sentences, dict):
        languages = {
            lang: count_tokens(
                tokenizer.backend_tokenizer,
                sents,
                sample_size=max(report_sentences // len(sentences), 1),
                tokenizer_json=tj,
            )
            for lang, sents in sentences.items()
        }
        counts = TokenCounts(len(tokens))
        tables = []
        for c in languages.values():
            assert c.word_table is not None  # count_tokens fills it
            tables.append(c.word_table)
            counts.sentences += c.sentences
            counts.words += c.words
            counts.doc_freq += c.doc_freq
            counts.token_freq += c.token_freq
            counts.sample.extend(c.sample)
            counts.sample_ids.extend(c.sample_ids)
        counts.word_table = WordTable.concatenate(tables)
    else:
        counts = count_tokens(tokenizer.backend_tokenizer, sentences, sample_size=report_sentences, tokenizer_json=tj)
    added = added_token_mask(tj, len(tokens))
    required = added | family.required_ids(tj, tokens, counts.doc_freq > 0, added)
    required[tokenizer.all_special_ids] = True
    return Counted(family, tj, tokens, counts, required, languages)


def choose(
    counted: Counted,
    *,
    min_fraction: float = 0.0005,
    min_count: int | None = None,
    max_size: int | None = None,
    coverage: float | None = None,
    order: str = "gain",
) -> Selection:
    """The ids to keep (see ``reduce_vocabulary``): by a threshold of sentences, or with ``coverage`` the pieces
    that keep that share of the word tokens tokenised unchanged (``select_by_coverage``; ``order`` is its)."""
    if counted.languages:
        return _choose_per_language(
            counted, min_fraction=min_fraction, min_count=min_count, max_size=max_size, coverage=coverage, order=order
        )
    family, tj, tokens, counts, required = (
        counted.family,
        counted.tokenizer_json,
        counted.tokens,
        counted.counts,
        counted.required,
    )
    threshold = None
    if coverage is None:
        threshold = frequency_threshold(counts.sentences, min_fraction=min_fraction, min_count=min_count)
    limit, floor = max_size, int(required.sum())  # the selection never goes below the required tokens
    while True:
        if coverage is None:
            assert threshold is not None  # set above whenever coverage is None
            chosen = select_ids(counts.doc_freq, required, threshold=threshold, max_size=limit)
        else:
            assert counts.word_table is not None  # count_tokens fills it
            chosen = select_by_coverage(counts.word_table, required, coverage=coverage, max_size=limit, order=order)
        keep = family.close(tj, chosen, tokens)
        if max_size is None or keep.sum() <= max_size:
            break
        assert limit is not None  # limit starts at max_size, which is not None here
        if limit <= floor:  # the closure of the required tokens alone does not fit
            raise EliquareError(
                f"max_size {max_size} is smaller than the {int(keep.sum())} tokens this tokenizer needs to spell "
                f"the corpus (special tokens, characters and the merges that build them); give --max-size "
                f"{int(keep.sum())} or more"
            )
        limit = max(floor, limit - (int(keep.sum()) - max_size))  # the closure added tokens: make room for them
    return Selection(family, tj, tokens, counts, threshold, required, keep, chosen=chosen, coverage=coverage)


def select_vocabulary(
    tokenizer,
    sentences: Iterable[str],
    *,
    min_fraction: float = 0.0005,
    min_count: int | None = None,
    max_size: int | None = None,
    coverage: float | None = None,
    report_sentences: int = 50_000,
) -> Selection:
    """Count the subwords of ``tokenizer`` on ``sentences`` and choose the ones to keep (see ``reduce_vocabulary``).

    ``sentences`` may be ``{language: sentences}``: a subword stays when it is found in ``min_fraction`` (or
    ``min_count``) of the sentences of any one language, or (with ``coverage``) when a language needs it to keep
    that share of its own words unchanged, so that a smaller language keeps its own subwords."""
    return choose(
        count_vocabulary(tokenizer, sentences, report_sentences=report_sentences),
        min_fraction=min_fraction,
        min_count=min_count,
        max_size=max_size,
        coverage=coverage,
    )


def _choose_per_language(counted: Counted, *, min_fraction, min_count, max_size, coverage, order) -> Selection:
    if max_size is not None:
        raise EliquareError(
            "--vocab-max-size caps one language's vocabulary; with several languages give "
            "--vocab-min-fraction, --vocab-min-count or --vocab-coverage (applied to each language)"
        )
    family, tj, tokens, required = counted.family, counted.tokenizer_json, counted.tokens, counted.required
    assert counted.languages is not None  # choose calls this only for counts of several languages
    keeps: dict[str, np.ndarray] = {}
    languages: dict[str, dict[str, Any]] = {}  # each language's record
    for lang, c in counted.languages.items():
        if coverage is None:
            threshold = frequency_threshold(c.sentences, min_fraction=min_fraction, min_count=min_count)
            keeps[lang] = select_ids(c.doc_freq, required, threshold=threshold)
        else:
            threshold = None
            assert c.word_table is not None  # count_tokens fills it
            keeps[lang] = select_by_coverage(c.word_table, required, coverage=coverage, order=order)
        languages[lang] = {
            "sentences": c.sentences,
            "threshold_sentences": threshold,
            "frequent_ids": int((keeps[lang] & ~required).sum()),
        }
    union = np.logical_or.reduce(list(keeps.values()))
    for lang, keep in keeps.items():  # what would be lost without this language's own threshold
        others = np.logical_or.reduce([k for other, k in keeps.items() if other != lang] or [required])
        languages[lang]["only_this_language"] = int((keep & ~others).sum())
    keep = family.close(tj, union, tokens)
    threshold = None if coverage is not None else min(v["threshold_sentences"] for v in languages.values())
    return Selection(
        family, tj, tokens, counted.counts, threshold, required, keep, languages, chosen=union, coverage=coverage
    )
