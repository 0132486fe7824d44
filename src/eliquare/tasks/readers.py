"""Readers for the formats downstream datasets come in, and the train/dev/test split logic.

Token tasks (``pos``, ``ner``):

- CoNLL-U: one word per line, 10 tab-separated columns. POS reads UPOS (column 4); NER reads the
  ``NER=`` key of MISC (column 10). Multi-word token lines (``1-2``) and empty nodes (``1.1``) are
  skipped: the syntactic words are what gets labelled.
- token-per-line BIO files: ``token TAG`` (space or tab separated), ``idx<TAB>token<TAB>tag``
  (a leading index column), or CoNLL-2003 style ``token POS CHUNK TAG`` (the tag is the last column).
  Sentences are separated by blank lines; ``-DOCSTART-`` lines are skipped.

Documents: a CoNLL-U ``# newdoc`` comment or a ``-DOCSTART-`` line starts a document, and every sentence
remembers its own (``TokenExample.document``). Some corpora annotate entities in only part of their documents
and leave every word of the others ``O`` (UD Slovenian-SSJ's ``NER=`` layer covers 14 of the 74 documents of its
dev file): trained on those, a tagger learns that names are ``O``. ``documents="annotated"`` keeps the documents
that hold at least one entity; without it, such a file gets a notice (``partial_annotation_notice``).

Sentence tasks (``classify``): TSV / CSV (quoted fields allowed) and JSON lines. The label and the
text column(s) are chosen by name or 0-based index; several text columns are joined with a space.

Every example remembers the file and the line it came from, so that errors can name both.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union

from eliquare.errors import EliquareError, notice
from eliquare.tasks.files import (
    TASKS,
    UPOS,
    Column,
    TaskData,
    TextExample,
    TokenExample,
    _check_file,
    _columns_shown,
    _shown,
)
from eliquare.tasks.tables import read_table
from eliquare.tasks.tokens import read_token_file, sniff_token_format

Example = Union[TokenExample, TextExample]


# ---------------------------------------------------------------------------------------------
# helpers


# \x0b, \x0c, \x1c-\x1e, \x85, \u2028, \u2029: with those, every error after one named the wrong line)


# ---------------------------------------------------------------------------------------------
# token tasks


# ---------------------------------------------------------------------------------------------
# sentence classification


# ---------------------------------------------------------------------------------------------
# datasets: files -> train/dev/test + labels


def read_examples(
    path: str | Path,
    task: str,
    fmt: str = "auto",
    label_column: Column | None = None,
    text_columns: Sequence[Column] | None = None,
    header: Optional[bool] = None,
) -> list:
    if task not in TASKS:
        raise EliquareError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    if task == "classify":
        return read_table(path, label_column, text_columns, header, fmt)
    return read_token_file(path, task, fmt)


def _cut(examples: list, fractions: Sequence[float], seed: int) -> list[list]:
    """Shuffle deterministically and cut into consecutive parts of the given fractions (last = rest)."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    parts, at = [], 0
    for frac in fractions:
        k = max(1, round(frac * len(order)))
        parts.append(sorted(order[at : at + k]))
        at += k
    parts.append(sorted(order[at:]))
    return [[examples[i] for i in part] for part in parts]


DOCUMENTS = ("all", "annotated")


def _by_document(examples: list) -> dict:
    """``{document: [examples]}`` in the file's order."""
    docs: dict = {}
    for e in examples:
        docs.setdefault(e.document, []).append(e)
    return docs


def _holds_entity(examples: list) -> bool:
    return any(t != "O" for e in examples for t in e.tags)


def _capitalised(examples: list) -> int:
    """Words past a sentence's first that start with a capital letter: names, in most scripts that have case."""
    return sum(1 for e in examples for w in e.words[1:] if w[:1].isupper())


def partial_annotation_notice(examples: list, path) -> Optional[str]:
    """A notice when a file's NER layer seems to cover only some of its documents: documents without a single
    entity that hold at least a third of the file's capitalised words (past a sentence's first), 20 or more."""
    docs = _by_document(examples)
    if len(docs) < 2 or None in docs:
        return None
    annotated = [d for d, exs in docs.items() if _holds_entity(exs)]
    bare = [exs for d, exs in docs.items() if d not in annotated]
    if not annotated or not bare:
        return None
    caps_bare = sum(_capitalised(exs) for exs in bare)
    if caps_bare < 20 or 3 * caps_bare < _capitalised(examples):
        return None
    return (
        f"{path}: {len(bare)} of {len(docs)} documents hold no entity, though they hold {caps_bare} capitalised "
        f"words past a sentence's first: its NER layer seems to cover only some documents (every word of the "
        f"others is O, names included); give --documents annotated (a suite's dataset: documents: annotated) to "
        f"keep the {len(annotated)} that hold entities"
    )


def annotated_documents(examples: list, path) -> tuple[list, str]:
    """The examples of the documents that hold at least one entity, and what was kept, in words."""
    docs = _by_document(examples)
    if None in docs:
        raise EliquareError(
            f"{path} marks no documents (CoNLL-U '# newdoc' comments or -DOCSTART- lines), which "
            "--documents annotated needs; drop --documents annotated or mark the documents"
        )
    kept = [e for exs in docs.values() if _holds_entity(exs) for e in exs]
    if not kept:
        raise EliquareError(
            f"{path}: none of its {len(docs)} documents holds an entity; give a file with NER "
            "annotations, or drop --documents annotated"
        )
    n_docs = sum(1 for exs in docs.values() if _holds_entity(exs))
    return kept, f"{n_docs} of {len(docs)} documents ({len(kept)} of {len(examples)} sentences) of {path}"


def _label_sort_key(label: str):
    return (0, int(label), "") if re.fullmatch(r"-?\d+", label) else (1, 0, label)


def ner_labels(tags) -> list[str]:
    types = sorted({t[2:] for t in tags if t != "O"})
    return (
        ["O"]
        + [f"{p}-{t}" for t in types for p in ("B", "I")]
        + [f"{p}-{t}" for t in types for p in ("E", "S") if f"{p}-{t}" in tags]
    )


def label_inventory(task: str, examples: list, conllu_pos: bool = False) -> list[str]:
    if task == "classify":
        return sorted({e.label for e in examples}, key=_label_sort_key)
    tags = {t for e in examples for t in e.tags}
    if task == "ner":
        return ner_labels(tags)
    if conllu_pos and tags <= set(UPOS):  # a UPOS tag set: the whole inventory is known in advance
        tags |= set(UPOS)
    return sorted(tags)


def check_labels(task: str, examples: list, labels: Sequence[str]) -> None:
    """Every label of ``examples`` must be in the inventory: else name the file and line."""
    known = set(labels)
    shown = ", ".join(map(_columns_shown, labels[:30])) + (" ..." if len(labels) > 30 else "")
    for e in examples:
        if task == "classify":
            if e.label not in known:
                raise EliquareError(
                    f"{e.source}, line {e.line}: label {_shown(e.label)} does not occur in the training data "
                    f"(labels: {shown}); fix the label or add training examples of it"
                )
        else:
            for i, t in enumerate(e.tags):
                if t not in known:
                    raise EliquareError(
                        f"{e.source}, line {e.lines[i] if e.lines else e.line}: "
                        f"tag {_shown(t)} does not occur in the training data "
                        f"(tags: {shown}); fix the tag or add training examples of it"
                    )


def _check_split_options(task: str, documents: str, dev, test) -> None:
    if task not in TASKS:
        raise EliquareError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    if documents not in DOCUMENTS:
        raise EliquareError(f"unknown --documents {documents!r}; use one of {', '.join(DOCUMENTS)}")
    if documents != "all" and task != "ner":
        raise EliquareError(
            f"--documents {documents} keeps the documents that hold entities, which only --task ner "
            f"has; drop it for --task {task}"
        )
    if dev is not None and test is None:
        raise EliquareError(
            "a --dev file was given without --test; give --test too, or give only --train to cut "
            "train/dev/test 80/10/10 out of one file"
        )


def _splits(task, tr: list, read, train, dev, test, dev_fraction: float, split_seed: int, conllu_pos: bool):
    """``(train, dev, test, how they came about, labels)``: the files as given, or the cuts of the training file."""
    if test is None:
        if len(tr) < 3:
            raise EliquareError(
                f"{train} holds {len(tr)} example(s): too few to cut train/dev/test 80/10/10 "
                "(need 3 at least); give more data or separate --dev/--test files"
            )
        te, dv, tr = _cut(tr, (0.1, 0.1), split_seed)
        split = f"train/dev/test cut 80/10/10 from {train} (seed {split_seed})"
        labels = label_inventory(task, tr + dv + te, conllu_pos)
    else:
        te = read(test)
        if dev is None:
            if len(tr) < 2:
                raise EliquareError(
                    f"{train} holds {len(tr)} example(s): too few to hold out a dev split; give "
                    "more data or a --dev file"
                )
            dv, tr = _cut(tr, (dev_fraction,), split_seed)
            split = f"dev = {dev_fraction:.0%} of {train} (seed {split_seed}); test = {test}"
        else:
            dv = read(dev)
            split = "train/dev/test as given"
        labels = label_inventory(task, tr + dv, conllu_pos)
        check_labels(task, te, labels)
    return tr, dv, te, split, labels


def load_task_data(
    task: str,
    train: str | Path,
    dev: str | Path | None = None,
    test: str | Path | None = None,
    *,
    fmt: str = "auto",
    label_column: Column | None = None,
    text_columns: Sequence[Column] | None = None,
    header: Optional[bool] = None,
    dev_fraction: float = 0.1,
    split_seed: int = 0,
    documents: str = "all",
) -> TaskData:
    """Read a dataset given as one, two or three files.

    - train + dev + test: used as given;
    - train + test: ``dev_fraction`` of train is held out (deterministically) for validation;
    - train only: the file is cut 80/10/10 into train/dev/test.

    ``documents="annotated"`` (NER): every file keeps only its documents that hold an entity, before any cut.
    """
    _check_split_options(task, documents, dev, test)
    notices: list[str] = []
    kept: list[str] = []

    def read(path):
        examples = read_examples(path, task, fmt, label_column, text_columns, header)
        if task != "ner":
            return examples
        if documents == "annotated":
            examples, what = annotated_documents(examples, path)
            kept.append(what)
        else:
            notices.extend(filter(None, [partial_annotation_notice(examples, path)]))
        return examples

    conllu_pos = (
        task == "pos" and fmt in ("auto", "conllu") and sniff_token_format(_check_file(train, "train")) == "conllu"
    )
    tr = read(train)
    files = {"train": str(train), "dev": str(dev) if dev else None, "test": str(test) if test else None}
    tr, dv, te, split, labels = _splits(task, tr, read, train, dev, test, dev_fraction, split_seed, conllu_pos)
    if len(labels) < 2:
        raise EliquareError(
            f"{train}: only one label ({_shown(labels[0])}) in the training data; a classifier needs two or more"
        )
    if kept:
        split += "; NER-annotated documents only: " + ", ".join(kept)
    return TaskData(task, tr, dv, te, labels, split, files, notices)


def read_task_splits(cfg) -> TaskData:
    """The three splits of a fine-tuning job's data (``FinetuneConfig``: its files, format and split options), at most
    ``max_train_examples`` training examples; the readers' notices printed."""
    data = load_task_data(
        cfg.task,
        cfg.train,
        cfg.dev,
        cfg.test,
        fmt=cfg.format,
        label_column=cfg.label_column,
        text_columns=cfg.text_column,
        header=cfg.header,
        dev_fraction=cfg.dev_fraction,
        split_seed=cfg.split_seed,
        documents=cfg.documents,
    )
    for message in data.notices:
        notice(message)
    if cfg.max_train_examples is not None:
        data.train = data.train[: cfg.max_train_examples]
    return data
