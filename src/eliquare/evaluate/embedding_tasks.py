"""Tasks on frozen sentence embeddings: what an embedding student is for, scored without fine-tuning anything.

Three tasks of the evaluation suite (``task:`` in a suite, ``--task`` of `eliquare finetune`), each written to
``metrics.json`` like a fine-tuning job, so that `evaluate`, `report` and `compare` take them as they are:

- ``embed-classify``: a logistic-regression head on frozen embeddings of a classification dataset (the news and
  sentiment sets): its regularisation chosen on dev, macro-F1 and accuracy on test;
- ``retrieval``: each row's query (``--query-column``, e.g. a news headline) against every row's document (the text
  columns, e.g. the article): recall@1, recall@10 and MRR@10 of finding its own document;
- ``agreement``: the model's embeddings against a ``--reference`` model's (the teacher's) on the same texts: top-10
  neighbour overlap and the Spearman correlation of pairwise similarities.

Embeddings are made as the model's sentence-transformers modules make them (``eliquare.embedding``): with its
prompts (``--query-prompt``, ``--document-prompt``: e5's ``query: `` / ``passage: ``), pooling and normalisation; a
model without those files (a masked-LM student) is mean-pooled and normalised.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eliquare.errors import EliquareError, check_writable
from eliquare.evaluate.metrics import MAIN_METRIC

EMBEDDING_TASKS = ("embed-classify", "retrieval", "agreement")


class Embedder:
    """A model as its sentence embeddings: ``embed(texts, prompt_name)``, with the encoding speed it measured."""

    def __init__(self, spec: str, max_length: int | None = None, batch_size: int = 32):
        from eliquare.embedding import embedding_spec_for
        from eliquare.models import count_parameters, length_limit, load_model

        loaded = load_model(spec, head="base")
        self.spec_name, self.model, self.tokenizer, self.path = spec, loaded.model, loaded.tokenizer, loaded.path
        self.embedding = embedding_spec_for(spec, loaded.path)
        limit = length_limit(self.model.config, self.tokenizer)
        self.max_length = min(max_length or self.embedding.max_seq_length or limit, limit)
        self.batch_size = batch_size
        self.parameters = count_parameters(self.model)
        self.seconds = 0.0
        self.texts = 0
        self.tokens = 0

    def prompt(self, name: str | None) -> str:
        return self.embedding.prompts.get(name, "") if name else ""

    def embed(self, texts: Sequence[str], prompt_name: str | None = None) -> np.ndarray:
        from eliquare.embedding import encode

        prompt = self.prompt(prompt_name)
        started = time.perf_counter()
        vectors = encode(
            self.model,
            self.tokenizer,
            self.embedding,
            list(texts),
            prompt,
            batch_size=self.batch_size,
            max_length=self.max_length,
        )
        self.seconds += time.perf_counter() - started
        self.texts += len(texts)
        self.tokens += sum(
            min(len(ids), self.max_length)
            for ids in self.tokenizer([prompt + t for t in texts], add_special_tokens=True, verbose=False)["input_ids"]
        )
        return vectors

    def speed(self) -> dict:
        s = max(self.seconds, 1e-9)
        return {"examples_per_second": round(self.texts / s, 2), "tokens_per_second": round(self.tokens / s, 1)}


# --- the scores ------------------------------------------------------------------------------------


def retrieval_scores(queries: np.ndarray, documents: np.ndarray, k: int = 10) -> dict:
    """Query i's own document is document i: recall@1, recall@k and MRR@k over cosine similarities."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True).clip(1e-12)
    d = documents / np.linalg.norm(documents, axis=1, keepdims=True).clip(1e-12)
    sims = q @ d.T
    own = sims[np.arange(len(q)), np.arange(len(q))]
    rank = (sims > own[:, None]).sum(1) + 1  # 1 = found first (ties count in the query's favour)
    return {
        "recall_at_1": float((rank == 1).mean()),
        f"recall_at_{k}": float((rank <= k).mean()),
        f"mrr_at_{k}": float(np.where(rank <= k, 1.0 / rank, 0.0).mean()),
        "queries": int(len(q)),
    }


def neighbours(vectors: np.ndarray, k: int) -> np.ndarray:
    """The k nearest other rows of each row by cosine similarity (indices, nearest first)."""
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def agreement_scores(model: np.ndarray, reference: np.ndarray, k: int = 10) -> dict:
    """Top-k neighbour overlap (mean share of each text's k nearest neighbours the two embeddings agree on) and the
    Spearman correlation of all pairwise cosine similarities."""
    from scipy.stats import spearmanr

    if len(model) <= k:
        raise EliquareError(f"agreement needs more than {k} texts (got {len(model)}); give a larger file")
    a, b = neighbours(model, k), neighbours(reference, k)
    overlap = float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)]))

    def pairwise(v):
        v = v / np.linalg.norm(v, axis=1, keepdims=True).clip(1e-12)
        return (v @ v.T)[np.triu_indices(len(v), 1)]

    rho = float(spearmanr(pairwise(model), pairwise(reference)).statistic)
    return {f"neighbours_at_{k}": overlap, "spearman": rho, "texts": int(len(model))}


def logistic_regression_scores(train_x, train_y, dev_x, dev_y, test_x, test_y, seed: int) -> tuple[dict, list]:
    """A logistic regression on frozen embeddings, its inverse regularisation C chosen by dev macro-F1."""
    from sklearn.linear_model import LogisticRegression

    from eliquare.evaluate.metrics import classification_scores

    best = None
    for c in (0.1, 1.0, 10.0, 100.0):
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(train_x, train_y)
        dev = classification_scores(list(dev_y), list(clf.predict(dev_x)))["macro_f1"]
        if best is None or dev > best[0]:
            best = (dev, c, clf)
    assert best is not None  # the loop tried at least one C
    dev_f1, c, clf = best
    pred = list(clf.predict(test_x))
    scores = classification_scores(list(test_y), pred)
    return {**scores, "dev_macro_f1": dev_f1, "C": c}, pred


# --- the data -------------------------------------------------------------------------------------


def _pairs(cfg) -> tuple[list[str], list[str], str]:
    """(queries, documents, file) of a retrieval dataset: row i's query and its own document."""
    from eliquare.tasks.tables import read_table

    if not cfg.query_column:
        raise EliquareError(
            "--task retrieval needs --query-column (the column of the queries, e.g. headline) and "
            "--text-column for the documents"
        )
    path = cfg.test or cfg.train
    rows = read_table(
        path,
        label_column=cfg.query_column,
        text_columns=cfg.text_column,
        header=cfg.header,
        fmt=cfg.format if cfg.format != "auto" else "auto",
    )
    if cfg.max_train_examples:
        rows = rows[: cfg.max_train_examples]
    if len(rows) < 2:
        raise EliquareError(f"{path} holds {len(rows)} query-document pair(s); retrieval needs two or more")
    return [r.label for r in rows], [r.text for r in rows], str(path)


def _texts(cfg) -> tuple[list[str], str]:
    """The texts of an agreement dataset: a table's text columns, or a token file's sentences (words joined)."""
    from eliquare.tasks.tables import read_table, sniff_table_format
    from eliquare.tasks.tokens import read_token_file

    path = cfg.test or cfg.train
    try:
        table = sniff_table_format(Path(path)) in ("tsv", "csv", "jsonl", "json") and cfg.format in (
            "auto",
            "tsv",
            "csv",
            "jsonl",
            "json",
        )
    except EliquareError:
        table = False
    if cfg.text_column or (table and cfg.format != "auto"):
        texts = [
            r.text
            for r in read_table(
                path, label_column=cfg.label_column, text_columns=cfg.text_column, header=cfg.header, fmt=cfg.format
            )
        ]
    else:
        fmt = cfg.format if cfg.format in ("conllu", "bio") else "auto"
        texts = [" ".join(e.words) for e in read_token_file(path, "ner" if fmt != "conllu" else "pos", fmt)]
    texts = [t for t in dict.fromkeys(texts) if t.strip()]  # each distinct text once
    limit = cfg.max_train_examples or 1000
    return texts[:limit], str(path)


# --- the stage ------------------------------------------------------------------------------------


@dataclass
class _Scored:
    """What one frozen-embedding task measured: the model's embedder, its test scores, the data it read and, for
    embed-classify, the labels and the test predictions beside the test examples."""

    model: Embedder
    scores: dict
    data: dict
    labels: list = field(default_factory=list)
    predictions: list | None = None
    test_examples: list = field(default_factory=list)


def _embed_classify(cfg) -> _Scored:
    from eliquare.config import to_dict
    from eliquare.tasks.readers import read_task_splits

    split_data = read_task_splits(cfg.__class__(**{**to_dict(cfg), "task": "classify"}))
    model = Embedder(cfg.model, cfg.max_length, cfg.eval_batch_size)
    x = {s: model.embed([e.text for e in getattr(split_data, s)], cfg.query_prompt) for s in ("test", "train", "dev")}
    y = {s: [e.label for e in getattr(split_data, s)] for s in ("train", "dev", "test")}
    scores, predictions = logistic_regression_scores(
        x["train"], y["train"], x["dev"], y["dev"], x["test"], y["test"], cfg.seed
    )
    data = {
        **split_data.files,
        "split": split_data.split,
        "train_examples": len(split_data.train),
        "dev_examples": len(split_data.dev),
        "test_examples": len(split_data.test),
    }
    return _Scored(model, scores, data, split_data.labels, predictions, list(split_data.test))


def _test_file_data(cfg, path: str, split: str, examples: int) -> dict:
    """The ``data`` entry of a task that reads one file and trains nothing."""
    return {
        "train": cfg.train,
        "dev": None,
        "test": cfg.test,
        "file": path,
        "split": split,
        "train_examples": 0,
        "dev_examples": 0,
        "test_examples": examples,
    }


def _retrieval(cfg) -> _Scored:
    queries, documents, path = _pairs(cfg)
    model = Embedder(cfg.model, cfg.max_length, cfg.eval_batch_size)
    scores = retrieval_scores(model.embed(queries, cfg.query_prompt), model.embed(documents, cfg.document_prompt))
    return _Scored(model, scores, _test_file_data(cfg, path, "every row of the file", len(queries)))


def _agreement(cfg) -> _Scored:
    texts, path = _texts(cfg)
    model = Embedder(cfg.model, cfg.max_length, cfg.eval_batch_size)
    vectors = model.embed(texts, cfg.query_prompt)
    reference = Embedder(cfg.reference, cfg.max_length, cfg.eval_batch_size)
    scores = agreement_scores(vectors, reference.embed(texts, cfg.query_prompt))
    scores["reference"] = cfg.reference
    return _Scored(model, scores, _test_file_data(cfg, path, f"the first {len(texts)} distinct texts", len(texts)))


def _summary(cfg, scored: _Scored, started: float) -> dict:
    """``metrics.json`` in the layout of a fine-tuning job's, with its one run."""
    from eliquare import __version__
    from eliquare.config import to_dict

    model, scores = scored.model, scored.scores
    metric = MAIN_METRIC[cfg.task]
    score = float(scores[metric])
    size = {
        "parameters": model.parameters,
        "encoder_parameters": model.parameters,
        "size_mb": round(model.parameters * 4 / 1e6, 1),
    }
    run = {
        "seed": cfg.seed,
        "score": score,
        "test": scores,
        **size,
        **model.speed(),
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    return {
        "eliquare": __version__,
        "kind": "finetune",
        "frozen": True,
        "model": cfg.model,
        "model_path": model.path,
        "task": cfg.task,
        "metric": metric,
        "score": score,
        "std": 0.0,
        "seeds": [cfg.seed],
        "scores": [score],
        "test": scores,
        "data": scored.data,
        "labels": scored.labels,
        "max_length": model.max_length,
        "embedding": model.embedding.as_dict(),
        **size,
        **model.speed(),
        "train_seconds": run["train_seconds"],
        "runs": [run],
        "config": to_dict(cfg),
    }


def run_embedding_task(cfg) -> dict:
    """Score ``cfg.model`` on one frozen-embedding task (``cfg.task`` in EMBEDDING_TASKS); writes and returns
    ``cfg.out/metrics.json`` in the layout of a fine-tuning job's."""
    out = check_writable(cfg.out)
    if (out / "metrics.json").exists() and not cfg.overwrite:
        raise EliquareError(f"{out} already holds results (metrics.json); give --overwrite or another --out")
    if cfg.task == "agreement" and not cfg.reference:
        raise EliquareError("--task agreement needs --reference MODEL (the model to agree with, e.g. the teacher)")
    started = time.perf_counter()
    if cfg.task == "embed-classify":
        scored = _embed_classify(cfg)
    elif cfg.task == "retrieval":
        scored = _retrieval(cfg)
    else:
        scored = _agreement(cfg)
    summary = _summary(cfg, scored, started)
    out.mkdir(parents=True, exist_ok=True)
    if scored.predictions is not None:
        with (out / "predictions.tsv").open("w", encoding="utf-8") as f:
            f.write("line\tgold\tpredicted\n")
            for e, p in zip(scored.test_examples, scored.predictions):
                f.write(f"{e.line}\t{e.label}\t{p}\n")
    tmp = out / ".metrics.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(out / "metrics.json")
    print(
        f"{cfg.task} {summary['metric']} on test: {100 * summary['score']:.2f} (frozen embeddings of {cfg.model}); "
        f"results in {out}",
        file=sys.stderr,
        flush=True,
    )
    return summary
