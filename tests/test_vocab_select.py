"""Counting and selection of subwords (eliquare.vocab.select)."""

from __future__ import annotations

import numpy as np
import pytest
import tiny

from eliquare.errors import EliquareError
from eliquare.vocab.select import count_tokens, frequency_threshold, select_ids


def test_counts_match_a_plain_python_count(tiny_xlmr):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_xlmr)
    tokenizer.backend_tokenizer.enable_truncation(8)  # must not cut the count short
    sentences = tiny.synthetic_sentences(300, seed=3)
    counts = count_tokens(tokenizer.backend_tokenizer, sentences, sample_size=50, batch_size=64)
    doc = np.zeros(len(tokenizer), dtype=np.int64)
    tok = np.zeros(len(tokenizer), dtype=np.int64)
    for s in sentences:
        ids = tokenizer(s, add_special_tokens=False, truncation=False)["input_ids"]
        np.add.at(tok, ids, 1)
        doc[sorted(set(ids))] += 1
    assert counts.sentences == 300
    assert counts.words == sum(len(s.split()) for s in sentences)
    assert np.array_equal(counts.doc_freq, doc)
    assert np.array_equal(counts.token_freq, tok)
    assert len(counts.sample) == 50 and len(set(counts.sample)) > 1
    for s, ids in zip(counts.sample, counts.sample_ids):
        assert ids == tokenizer(s, add_special_tokens=False)["input_ids"]
    again = count_tokens(tokenizer.backend_tokenizer, sentences, sample_size=50, batch_size=64)
    assert again.sample == counts.sample  # a fixed seed: the same sample every time


def test_empty_corpus_is_an_error(tiny_xlmr):
    from transformers import AutoTokenizer

    with pytest.raises(EliquareError, match="no sentences"):
        count_tokens(AutoTokenizer.from_pretrained(tiny_xlmr).backend_tokenizer, [])


def test_threshold():
    assert frequency_threshold(1_000_000) == 500  # the paper's 0.05%
    assert frequency_threshold(1000) == 1  # 0.5 sentences -> at least one
    assert frequency_threshold(3000, min_fraction=0.001) == 3
    assert frequency_threshold(3001, min_fraction=0.001) == 4
    assert frequency_threshold(1000, min_fraction=0.0) == 1
    assert frequency_threshold(1000, min_count=7) == 7
    with pytest.raises(EliquareError):
        frequency_threshold(1000, min_fraction=2.0)
    with pytest.raises(EliquareError):
        frequency_threshold(1000, min_count=0)


def test_select_keeps_required_and_frequent_and_caps_by_frequency():
    doc_freq = np.array([0, 0, 9, 5, 5, 1, 0, 7])
    required = np.zeros(8, dtype=bool)
    required[[0, 6]] = True
    assert np.flatnonzero(select_ids(doc_freq, required, threshold=5)).tolist() == [0, 2, 3, 4, 6, 7]
    # cap 5: the two required + 9, 7 and the first of the tied 5s
    assert np.flatnonzero(select_ids(doc_freq, required, threshold=1, max_size=5)).tolist() == [0, 2, 3, 6, 7]
    assert np.flatnonzero(select_ids(doc_freq, required, threshold=1, max_size=2)).tolist() == [0, 6]
    with pytest.raises(EliquareError, match="max-size 2"):
        select_ids(doc_freq, required, threshold=1, max_size=1)


TRICKY = [
    "",
    " leading space",
    "trailing space ",
    "double  space here",
    "tab\there",
    "new\nline",
    "nbsp\u00a0here",
    "rlm,\u200f Words",
    "zero\u200bwidth",
    "<s> literal special",
    "a <MASK> b",
    "mtoto [MASK] anasoma",
    "Čaj été naïve",
    "שלום नमस्ते",
    "x",
    "12345 #@! ...",
    "\u3000ideographic\u3000space",
]


@pytest.fixture(scope="module")
def backends(tiny_bert, tiny_xlmr, tmp_path_factory):
    from transformers import AutoTokenizer

    roberta = tiny.build_tiny_roberta(tmp_path_factory.mktemp("roberta-select"))
    return {
        name: AutoTokenizer.from_pretrained(path).backend_tokenizer
        for name, path in (("wordpiece", tiny_bert), ("unigram", tiny_xlmr), ("bpe", roberta))
    }


@pytest.mark.parametrize("family", ["wordpiece", "unigram", "bpe", "unigram-spacing-normalizer"])
def test_word_by_word_counts_equal_sentence_by_sentence(backends, family):
    """The word cache is a shortcut only: it must give exactly the counts of the full pipeline."""
    import json

    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers

    from eliquare.vocab.word_by_word import word_by_word_is_exact

    if family == "unigram-spacing-normalizer":  # a normaliser that makes spaces, then collapses space runs
        backend = Tokenizer.from_str(backends["unigram"].to_str())
        backend.normalizer = normalizers.Sequence(
            [
                normalizers.Replace("\u200f", " "),
                normalizers.Replace("ž", " "),
                normalizers.Replace(Regex(" {2,}"), " "),
            ]
        )
        backend.pre_tokenizer = pre_tokenizers.Metaspace()  # as in multilingual-e5: a trailing space is a token
    else:
        backend = backends[family]
    assert word_by_word_is_exact(json.loads(backend.to_str()))
    sentences = tiny.synthetic_sentences(500, seed=5) + TRICKY + [s + " kitabu ž" for s in TRICKY]
    fast = count_tokens(backend, sentences, sample_size=10_000, batch_size=128)
    full = count_tokens(backend, sentences, sample_size=10_000, batch_size=128, word_by_word=False)
    assert np.array_equal(fast.doc_freq, full.doc_freq)
    assert np.array_equal(fast.token_freq, full.token_freq)
    assert fast.sample_ids == full.sample_ids
    assert fast.sample == full.sample == sentences
    # one sentence per batch: each tricky sentence must be caught by the whole-batch tests alone
    short = tiny.synthetic_sentences(20, seed=6) + TRICKY
    single = count_tokens(backend, short, batch_size=1)
    assert single.sample_ids == count_tokens(backend, short, batch_size=1, word_by_word=False).sample_ids


def test_pipelines_that_look_across_spaces_are_counted_sentence_by_sentence():
    from eliquare.vocab.word_by_word import word_by_word_is_exact

    metaspace = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}
    assert word_by_word_is_exact({"normalizer": None, "pre_tokenizer": metaspace})
    assert not word_by_word_is_exact({"normalizer": None, "pre_tokenizer": dict(metaspace, split=False)})
    assert not word_by_word_is_exact({"normalizer": None, "pre_tokenizer": None})
    assert not word_by_word_is_exact(
        {"normalizer": {"type": "Replace", "pattern": {"String": "a b"}, "content": ""}, "pre_tokenizer": metaspace}
    )
    split = {"type": "Split", "pattern": {"Regex": "\\w+ \\w+"}, "behavior": "Isolated", "invert": False}
    assert not word_by_word_is_exact({"normalizer": None, "pre_tokenizer": split})
