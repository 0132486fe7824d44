"""Metrics against hand-computed values (and against seqeval, the reference implementation)."""

from __future__ import annotations

import random
import warnings

import pytest

from eliquare.errors import EliquareError
from eliquare.evaluate.metrics import (
    MAIN_METRIC,
    accuracy,
    classification_scores,
    get_entities,
    ner_scores,
    pos_scores,
    task_scores,
)


def test_accuracy_and_pos():
    assert accuracy(["a", "b", "c", "d"], ["a", "x", "c", "d"]) == 0.75
    s = pos_scores([["DET", "NOUN"], ["VERB"]], [["DET", "VERB"], ["VERB"]])
    assert s["accuracy"] == pytest.approx(2 / 3) and s["micro_f1"] == s["accuracy"] and s["tokens"] == 3
    with pytest.raises(EliquareError):
        pos_scores([["DET"]], [["DET", "NOUN"]])


def test_entities_conlleval_rules():
    assert get_entities(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]
    assert get_entities(["I-PER", "I-PER", "O"]) == [("PER", 0, 1)]  # I- after O starts an entity
    assert get_entities(["B-PER", "I-LOC"]) == [("PER", 0, 0), ("LOC", 1, 1)]  # a type change splits
    assert get_entities(["B-PER", "B-PER"]) == [("PER", 0, 0), ("PER", 1, 1)]
    assert get_entities(["S-LOC", "B-ORG", "E-ORG"]) == [("LOC", 0, 0), ("ORG", 1, 2)]
    assert get_entities(["O", "O"]) == []


def test_ner_known_example():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "O"]]
    # gold: PER(0-1), LOC(3), ORG(0-1); predicted: PER(0-1), ORG(3), ORG(0): one of three right either way
    s = ner_scores(gold, pred)
    assert s["precision"] == pytest.approx(1 / 3) and s["recall"] == pytest.approx(1 / 3)
    assert s["f1"] == pytest.approx(1 / 3) and s["entities"] == 3
    assert s["per_type"]["PER"]["f1"] == 1.0 and s["per_type"]["LOC"]["f1"] == 0.0
    assert s["token_accuracy"] == pytest.approx(5 / 7)
    # precision 1/2, recall 1/3 -> F1 = 2 * (1/6) / (5/6) = 0.4
    s = ner_scores(gold, [["B-PER", "I-PER", "O", "O"], ["O", "O", "B-MISC"]])
    assert (s["precision"], s["recall"], s["f1"]) == pytest.approx((0.5, 1 / 3, 0.4))
    assert ner_scores([["O"]], [["O"]])["f1"] == 0.0


def test_ner_matches_seqeval():
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = random.Random(0)
    tags = ["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    for _ in range(50):
        gold = [[rng.choice(tags) for _ in range(rng.randint(1, 9))] for _ in range(6)]
        pred = [[rng.choice(tags) for _ in g] for g in gold]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = (seqeval.precision_score(gold, pred), seqeval.recall_score(gold, pred), seqeval.f1_score(gold, pred))
        s = ner_scores(gold, pred)
        assert (s["precision"], s["recall"], s["f1"]) == pytest.approx(want)


def test_classification_macro_f1_by_hand():
    gold = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "a"]
    # a: P 1/2 R 1/2 F 1/2; b: P 2/3 R 1 F 0.8; c: F 0 -> macro (0.5 + 0.8 + 0) / 3
    s = classification_scores(gold, pred)
    assert s["macro_f1"] == pytest.approx(1.3 / 3) and s["accuracy"] == pytest.approx(0.6)
    assert s["per_label"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    # a label only predicted counts too (as in scikit-learn)
    assert classification_scores(["a", "a"], ["a", "z"])["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)


def test_task_scores_dispatch():
    assert MAIN_METRIC == {
        "pos": "accuracy",
        "ner": "f1",
        "classify": "macro_f1",
        "embed-classify": "macro_f1",
        "retrieval": "mrr_at_10",
        "agreement": "neighbours_at_10",
    }
    assert task_scores("classify", ["x"], ["x"])["macro_f1"] == 1.0
    assert task_scores("pos", [["X"]], [["X"]])["accuracy"] == 1.0
    with pytest.raises(EliquareError):
        task_scores("parse", [], [])
