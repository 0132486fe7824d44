"""Scores of the three downstream tasks, dependency-free (checked against seqeval in the tests).

- POS: token accuracy, which equals micro-averaged F1 when every token gets exactly one tag;
- NER: entity-level micro precision / recall / F1 over BIO(ES) spans, seqeval's default (conlleval)
  rules: an ``I-X`` after ``O`` or after another type starts a new entity;
- classification: macro-averaged F1 over the labels seen in gold or prediction, and accuracy.

Scores are fractions in [0, 1].
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from eliquare.errors import EliquareError

MAIN_METRIC = {
    "pos": "accuracy",
    "ner": "f1",
    "classify": "macro_f1",
    # frozen-embedding tasks (eliquare.evaluate.embedding_tasks)
    "embed-classify": "macro_f1",
    "retrieval": "mrr_at_10",
    "agreement": "neighbours_at_10",
}


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _same_lengths(gold: Sequence, pred: Sequence, what: str) -> None:
    if len(gold) != len(pred):
        raise EliquareError(f"{what}: {len(gold)} gold but {len(pred)} predicted items")


def accuracy(gold: Sequence, pred: Sequence) -> float:
    _same_lengths(gold, pred, "accuracy")
    if not gold:
        return 0.0
    return sum(g == p for g, p in zip(gold, pred)) / len(gold)


def pos_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Token accuracy over sentences of tags (= micro-F1)."""
    _same_lengths(gold, pred, "POS")
    flat_g: list[str] = []
    flat_p: list[str] = []
    for i, (g, p) in enumerate(zip(gold, pred)):
        _same_lengths(g, p, f"POS sentence {i}")
        flat_g.extend(g)
        flat_p.extend(p)
    acc = accuracy(flat_g, flat_p)
    return {"accuracy": acc, "micro_f1": acc, "tokens": len(flat_g)}


# ---------------------------------------------------------------------------------------------
# entity spans, seqeval's default mode


def _split(tag: str) -> tuple[str, str]:
    if tag in ("O", "", "."):
        return "O", ""
    prefix, sep, typ = tag.partition("-")
    if not sep or prefix not in ("B", "I", "E", "S"):
        return "I", tag  # a bare type: inside an entity of that type
    return prefix, typ


def _end_of_chunk(prev_tag, tag, prev_type, type_) -> bool:
    return (
        prev_tag in ("E", "S")
        or (prev_tag in ("B", "I") and tag in ("B", "S", "O"))
        or (prev_tag != "O" and prev_type != type_)
    )


def _start_of_chunk(prev_tag, tag, prev_type, type_) -> bool:
    return (
        tag in ("B", "S") or (prev_tag in ("E", "S", "O") and tag in ("E", "I")) or (tag != "O" and prev_type != type_)
    )


def get_entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, first, last) spans of a BIO/BIOES sequence, inclusive, as seqeval/conlleval find them."""
    entities = []
    prev_tag, prev_type, begin = "O", "", 0
    for i, raw in enumerate(list(tags) + ["O"]):
        tag, type_ = _split(raw)
        if _end_of_chunk(prev_tag, tag, prev_type, type_):
            entities.append((prev_type, begin, i - 1))
        if _start_of_chunk(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return entities


def ner_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Entity-level micro precision, recall and F1 (and per type), over sentences of BIO tags."""
    _same_lengths(gold, pred, "NER")
    true, guess = set(), set()
    for i, (g, p) in enumerate(zip(gold, pred)):
        _same_lengths(g, p, f"NER sentence {i}")
        true |= {(i, *e) for e in get_entities(g)}
        guess |= {(i, *e) for e in get_entities(p)}
    hit = true & guess
    precision = len(hit) / len(guess) if guess else 0.0
    recall = len(hit) / len(true) if true else 0.0
    per_type = {}
    for typ in sorted({e[1] for e in true | guess}):
        t_typ = {e for e in true if e[1] == typ}
        g_typ = {e for e in guess if e[1] == typ}
        h_typ = t_typ & g_typ
        p_typ = len(h_typ) / len(g_typ) if g_typ else 0.0
        r_typ = len(h_typ) / len(t_typ) if t_typ else 0.0
        per_type[typ] = {"precision": p_typ, "recall": r_typ, "f1": _f1(p_typ, r_typ), "support": len(t_typ)}
    flat_g = [t for s in gold for t in s]
    flat_p = [t for s in pred for t in s]
    return {
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "entities": len(true),
        "token_accuracy": accuracy(flat_g, flat_p),
        "per_type": per_type,
    }


def classification_scores(gold: Sequence[str], pred: Sequence[str]) -> dict:
    """Macro-F1 over the labels present in gold or prediction (as scikit-learn does), and accuracy."""
    _same_lengths(gold, pred, "classification")
    labels = sorted(set(gold) | set(pred), key=str)
    tp = Counter(g for g, p in zip(gold, pred) if g == p)
    n_gold, n_pred = Counter(gold), Counter(pred)
    per_label = {}
    for lab in labels:
        p = tp[lab] / n_pred[lab] if n_pred[lab] else 0.0
        r = tp[lab] / n_gold[lab] if n_gold[lab] else 0.0
        per_label[str(lab)] = {"precision": p, "recall": r, "f1": _f1(p, r), "support": n_gold[lab]}
    macro = sum(v["f1"] for v in per_label.values()) / len(per_label) if per_label else 0.0
    return {"macro_f1": macro, "accuracy": accuracy(gold, pred), "examples": len(gold), "per_label": per_label}


def task_scores(task: str, gold: Sequence, pred: Sequence) -> dict:
    """All scores of ``task``; ``scores[MAIN_METRIC[task]]`` is the one the tables show."""
    if task == "pos":
        return pos_scores(gold, pred)
    if task == "ner":
        return ner_scores(gold, pred)
    if task == "classify":
        return classification_scores(gold, pred)
    raise EliquareError(f"unknown task {task!r}; use pos, ner or classify")
