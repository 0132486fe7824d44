"""`eliquare finetune`: fine-tune any encoder on POS, NER or text classification and score it.

Built on transformers' ``Trainer`` with ``AutoModelForTokenClassification`` /
``AutoModelForSequenceClassification``. Defaults are the paper's: 10 epochs, learning rate 5e-5,
weight decay 0.01, 500 warm-up steps, and the model of the epoch that scores best on the
validation split is the one kept and tested.

Token tasks put the label on the first sub-word of each word (the others get -100). A sentence
longer than the model's limit is cut into consecutive windows of whole words, so that no word goes
unlabelled; a text longer than the limit (classification) is truncated, with a notice.

Writes, under ``out`` (or ``out/seed-N`` for each of several seeds): ``model/`` (the fine-tuned
model and tokenizer), ``predictions.tsv`` (test predictions beside the gold labels) and
``metrics.json``; ``out/metrics.json`` holds the mean and standard deviation over the seeds.
"""

from __future__ import annotations

import math
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

from eliquare.atomic import write_json
from eliquare.config import FinetuneConfig
from eliquare.errors import EliquareError, check_writable, notice
from eliquare.evaluate.metrics import MAIN_METRIC, task_scores
from eliquare.evaluate.task_vocab import TaskVocabulary
from eliquare.models import length_limit, load_config, load_model, load_tokenizer, resolve_model
from eliquare.speed import machine
from eliquare.tasks.encoding import encode, quiet_transformers
from eliquare.tasks.files import TaskData
from eliquare.tasks.readers import read_task_splits
from eliquare.training import resolve_bf16, trainer_arguments

TASK_HEADS = {"pos": "token-classification", "ner": "token-classification", "classify": "sequence-classification"}


class _Features:
    """A list of feature dicts as a map-style dataset."""

    def __init__(self, features):
        self.features = features

    def __len__(self):
        return len(self.features)

    def __getitem__(self, i):
        return self.features[i]


# ---------------------------------------------------------------------------------------------
# scoring inside the Trainer


class Scorer:
    """Turns the Trainer's (argmax predictions, label ids) back into per-example labels and scores them."""

    def __init__(self, task: str, labels: Sequence[str]):
        self.task = task
        self.labels = list(labels)
        self.examples: list = []
        self.owners: list[int] = []
        self.last_predictions: list = []
        self.last_scores: dict = {}

    def use(self, examples, owners) -> None:
        self.examples, self.owners = examples, owners

    def decode(self, preds, label_ids) -> list:
        import numpy as np

        preds, label_ids = np.asarray(preds), np.asarray(label_ids)
        if self.task == "classify":
            return [self.labels[int(p)] for p in preds.reshape(-1)[: len(self.examples)]]
        out: list[list[str]] = [[] for _ in self.examples]
        for j, owner in enumerate(self.owners):
            mask = label_ids[j] != -100
            out[owner].extend(self.labels[int(p)] for p in preds[j][mask])
        for e, p in zip(self.examples, out):
            if len(p) != len(e.words):  # cannot happen: every word has a first sub-word
                raise RuntimeError(f"{e.source}, line {e.line}: {len(p)} predictions for {len(e.words)} words")
        return out

    def gold(self) -> list:
        return [e.label for e in self.examples] if self.task == "classify" else [list(e.tags) for e in self.examples]

    def __call__(self, eval_pred) -> dict:
        preds = self.decode(eval_pred.predictions, eval_pred.label_ids)
        scores = task_scores(self.task, self.gold(), preds)
        self.last_predictions, self.last_scores = preds, scores
        flat = {k: float(v) for k, v in scores.items() if isinstance(v, (int, float))}
        flat["score"] = float(scores[MAIN_METRIC[self.task]])
        return flat


def _argmax(logits, labels):
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    return logits.argmax(dim=-1)


def _keep_best_callback(scorer: Scorer):
    from transformers import TrainerCallback

    class KeepBest(TrainerCallback):
        """Keeps (in memory, on the CPU) the weights of the evaluation with the best validation score,
        and that evaluation's full dev scores."""

        def __init__(self):
            self.best: Optional[float] = None
            self.state_dict = None
            self.metrics: dict = {}
            self.scores: dict = {}
            self.epoch = None
            self.step = None
            self.history: list[dict] = []

        def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
            if not metrics or "eval_score" not in metrics or model is None:
                return
            score = metrics["eval_score"]
            self.history.append({"step": state.global_step, "epoch": state.epoch, "score": score})
            if self.best is None or score > self.best:
                self.best = score
                self.state_dict = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                self.metrics = dict(metrics)
                self.scores = dict(scorer.last_scores)  # compute_metrics ran just before this event
                self.epoch, self.step = state.epoch, state.global_step

    return KeepBest()


# ---------------------------------------------------------------------------------------------
# one run


def _finish_model_dir(directory: Path) -> None:
    """A fine-tuned model as a user deploys or exports it: no Trainer pickle, files 0644, a tokenizer config
    transformers 4.x loads (as a distilled student's directory)."""
    from eliquare.publish import make_tokenizer_config_portable, tidy

    make_tokenizer_config_portable(directory)
    tidy(directory)


def _write_predictions(path: Path, task: str, examples, preds) -> None:
    with path.open("w", encoding="utf-8") as f:
        if task == "classify":
            f.write("source_line\tgold\tpredicted\ttext\n")
            for e, p in zip(examples, preds):
                text = " ".join(e.text.split())
                f.write(f"{e.line}\t{e.label}\t{p}\t{text}\n")
        else:
            f.write("# word\tgold\tpredicted (one word per line, a blank line between sentences)\n")
            for e, p in zip(examples, preds):
                f.write(f"# {Path(e.source).name}:{e.line}\n")
                for w, g, q in zip(e.words, e.tags, p):
                    f.write(f"{w}\t{g}\t{q}\n")
                f.write("\n")


def _eval_steps(cfg, n_features: int) -> int:
    """Steps between dev evaluations: one epoch (or the whole run when shorter)."""
    steps_per_epoch = max(1, math.ceil(n_features / cfg.batch_size))
    total = cfg.max_steps if cfg.max_steps > 0 else max(1, math.ceil(cfg.epochs * steps_per_epoch))
    if cfg.warmup_steps >= total / 2:
        notice(
            f"warm-up ({cfg.warmup_steps} steps) covers {min(cfg.warmup_steps / total, 1):.0%} of the {total} "
            "training steps, so the learning rate stays below its peak for most of training; give "
            "--warmup-steps to change it"
        )
    return min(steps_per_epoch, total)


def _training_arguments(cfg, work: Path, eval_steps: int, seed: int):
    """The paper's schedule (linear decay after warm-up), a dev evaluation every ``eval_steps``, no checkpoints."""
    return trainer_arguments(
        work,
        seed=seed,
        use_cpu=cfg.use_cpu,
        bf16=resolve_bf16(cfg.bf16, cfg.use_cpu),
        group_by_length=cfg.group_by_length,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps > 0 else -1,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
        eval_steps=eval_steps,
        save_strategy="no",
        logging_strategy="steps",
        logging_steps=cfg.logging_steps or max(1, min(50, eval_steps)),
        dataloader_num_workers=0,
        disable_tqdm=not cfg.progress,
    )


def _trainer_class(trainer_cls):
    """``Trainer`` that evaluates and predicts in the dataset's order: transformers 5.x also sorts evaluation
    batches by length under ``group_by_length``, and the scorer aligns predictions with examples by position."""
    import torch

    class OrderedEvaluationTrainer(trainer_cls):
        def _get_eval_sampler(self, eval_dataset):
            return None if eval_dataset is None else torch.utils.data.SequentialSampler(eval_dataset)

    return OrderedEvaluationTrainer


def _train_keeping_best(cfg, data: TaskData, model, tokenizer, feats: dict, work: Path, seed: int):
    """Train, scoring the dev split every epoch; ``model`` ends with the weights of the best evaluation.

    Returns ``(trainer, scorer, keep, train_seconds)``; ``keep`` holds the best evaluation's dev scores.
    """
    from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding, Trainer

    train_ds, dev_ds = _Features(feats["train"][0]), _Features(feats["dev"][0])
    collator = (
        DataCollatorWithPadding(tokenizer) if cfg.task == "classify" else DataCollatorForTokenClassification(tokenizer)
    )
    scorer = Scorer(cfg.task, data.labels)
    scorer.use(data.dev, feats["dev"][1])
    keep = _keep_best_callback(scorer)
    args = _training_arguments(cfg, work, _eval_steps(cfg, len(train_ds)), seed)
    trainer = _trainer_class(Trainer)(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=train_ds,
        eval_dataset=dev_ds,
        processing_class=tokenizer,
        compute_metrics=scorer,
        callbacks=[keep],
        preprocess_logits_for_metrics=_argmax,
    )
    t0 = time.perf_counter()
    trainer.train()
    if keep.step != trainer.state.global_step and (
        not keep.history or keep.history[-1]["step"] != trainer.state.global_step
    ):
        trainer.evaluate()
    train_seconds = time.perf_counter() - t0
    if keep.state_dict is not None:
        model.load_state_dict(keep.state_dict)
    return trainer, scorer, keep, train_seconds


def _predict_test(cfg, data: TaskData, trainer, scorer: Scorer, feats: dict) -> tuple[list, dict, float]:
    """``(predictions, test scores, seconds)`` of the trainer's model on the test split."""
    scorer.use(data.test, feats["test"][1])
    t1 = time.perf_counter()
    out = trainer.predict(_Features(feats["test"][0]))
    predict_seconds = time.perf_counter() - t1
    preds = scorer.decode(out.predictions, out.label_ids)
    return preds, task_scores(cfg.task, scorer.gold(), preds), predict_seconds


def _train_one(
    cfg: FinetuneConfig, data: TaskData, tokenizer, feats: dict, vocab: TaskVocabulary | None, run_dir: Path, seed: int
) -> dict:
    """One seed: fine-tune keeping the best dev evaluation, test that model, write ``run_dir``."""
    import torch
    from transformers import set_seed

    set_seed(seed)
    with quiet_transformers():
        loaded = load_model(cfg.model, head=TASK_HEADS[cfg.task], labels=data.labels, tokenizer=False)
    model = loaded.model
    n_params = sum(p.numel() for p in model.parameters())
    base = getattr(model, "base_model", model)
    n_base = sum(p.numel() for p in base.parameters()) if base is not model else n_params
    fine_tuned = vocab.shrink(model) if vocab is not None else None  # exact: see eliquare.evaluate.task_vocab
    work = run_dir / "trainer"
    trainer, scorer, keep, train_seconds = _train_keeping_best(cfg, data, model, tokenizer, feats, work, seed)
    preds, test_scores, predict_seconds = _predict_test(cfg, data, trainer, scorer, feats)

    run_dir.mkdir(parents=True, exist_ok=True)
    _write_predictions(run_dir / "predictions.tsv", cfg.task, data.test, preds)
    if cfg.save_model:
        if vocab is not None:
            vocab.expand(model)  # the full vocabulary again: the saved model reads its own tokenizer's ids
        trainer.save_model(str(run_dir / "model"))
        _finish_model_dir(run_dir / "model")
    shutil.rmtree(work, ignore_errors=True)
    n_tokens_test = sum(sum(1 for x in f["attention_mask"] if x) for f in feats["test"][0])
    run = {
        "seed": seed,
        "score": test_scores[MAIN_METRIC[cfg.task]],
        "test": test_scores,
        "dev": keep.scores,  # the dev scores of the kept model
        "best_epoch": keep.epoch,
        "best_step": keep.step,
        "steps": trainer.state.global_step,
        "dev_history": keep.history,
        "train_seconds": round(train_seconds, 2),
        "machine": machine(),  # its timings, and the last bits of its scores, are this machine's
        "predict_seconds": round(predict_seconds, 3),
        "examples_per_second": round(len(data.test) / max(predict_seconds, 1e-9), 2),
        "tokens_per_second": round(n_tokens_test / max(predict_seconds, 1e-9), 1),
        "parameters": n_params,
        "encoder_parameters": n_base,
        "size_mb": round(n_params * 4 / 1e6, 1),
        "new_weights": len(loaded.new_weights),
        "task_vocabulary": fine_tuned,  # vocabulary and parameters actually fine-tuned (None: the full model)
        "device": str(trainer.args.device),
        "torch_threads": torch.get_num_threads(),
        "bf16": trainer.args.bf16,
    }
    write_json(run_dir / "metrics.json", run, indent=2)  # by a temporary name: a kill leaves none, never half of one
    return run


# ---------------------------------------------------------------------------------------------
# the stage


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def _load_tokenizer(cfg: FinetuneConfig):
    """``(path, tokenizer, model_config)`` of ``cfg.model``; the tokenizer must be a fast one."""
    path = resolve_model(cfg.model)
    with quiet_transformers():
        tokenizer = load_tokenizer(cfg.model, path)
        model_config = load_config(cfg.model, path)
    if not getattr(tokenizer, "is_fast", False):
        raise EliquareError(
            f"the tokenizer of {cfg.model} is not a fast (Rust) tokenizer, which word alignment "
            "needs; save the model with a tokenizer.json"
        )
    return path, tokenizer, model_config


def _max_length(cfg, tokenizer, model_config) -> int:
    """``cfg.max_length``, or the model's limit when none is given or it is above the limit."""
    limit = length_limit(model_config, tokenizer)
    max_length = cfg.max_length or limit
    if max_length > limit:
        notice(f"--max-length {max_length} is above the model's limit of {limit} tokens; using {limit}")
        max_length = limit
    return max_length


ENCODING_CACHE_VERSION = 1  # bump when encode() changes what it returns for the same input


def encoding_cache_dir() -> Path:
    from eliquare.cache import default_cache_dir

    return default_cache_dir() / "task-encodings"


def _encoding_key(cfg, data: TaskData, tokenizer, label2id: dict, max_length: int) -> str:
    """What a task's features follow from: the tokenizer (its whole state), the task, its labels, the length and
    every example of the three splits."""
    import hashlib
    import json

    from eliquare.corpus.prepare import tokenizer_fingerprint
    from eliquare.fingerprint import digest

    h = hashlib.blake2b(digest_size=16)
    for split in ("train", "dev", "test"):
        h.update(split.encode())
        for e in getattr(data, split):
            item = [e.text, e.label] if cfg.task == "classify" else [list(e.words), list(e.tags)]
            h.update(json.dumps(item, ensure_ascii=False).encode("utf-8"))
    return digest(
        {
            "version": ENCODING_CACHE_VERSION,
            "task": cfg.task,
            "tokenizer": tokenizer_fingerprint(tokenizer),
            "labels": label2id,
            "max_length": max_length,
            "examples": h.hexdigest(),
        }
    )


def _encode_splits(cfg, data: TaskData, tokenizer, max_length: int) -> dict:
    """``{split: (features, owners, stats)}``, with a notice for each split that had to be cut. With
    ``cfg.cache_encodings`` they are kept in the cache (``$ELIQUARE_CACHE/task-encodings``) under a key of
    everything they follow from, and read back by the next job of the same tokenizer and data (another seed, another
    setting of the same model)."""
    import json

    label2id = {lab: i for i, lab in enumerate(data.labels)}
    feats, cached = {}, None
    if cfg.cache_encodings:
        cached = encoding_cache_dir() / f"{_encoding_key(cfg, data, tokenizer, label2id, max_length)}.json"
        try:
            stored = json.loads(cached.read_text(encoding="utf-8"))
            feats = {split: tuple(stored[split]) for split in ("train", "dev", "test")}
        except (OSError, ValueError, KeyError, TypeError):
            feats = {}
    hit = bool(feats)
    for split in ("train", "dev", "test"):
        examples = getattr(data, split)
        if split not in feats:
            feats[split] = encode(cfg.task, examples, tokenizer, label2id, max_length)
        stats = feats[split][2]
        if stats.get("truncated"):
            notice(
                f"{stats['truncated']} of {len(examples)} {split} texts are longer than {max_length} tokens and "
                "were truncated"
            )
        if stats.get("windowed"):
            notice(
                f"{stats['windowed']} of {len(examples)} {split} sentences are longer than {max_length} tokens "
                "and were cut into windows (every word keeps its label)"
            )
        if stats.get("empty_words"):
            notice(f"{stats['empty_words']} {split} words gave no sub-word and were read as the unknown token")
    if cached is not None and not hit:  # (a damaged entry is replaced)
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            write_json(cached, {split: list(v) for split, v in feats.items()}, indent=None)
        except OSError as e:  # a read-only or full cache costs only the time to encode again
            notice(f"task encodings not cached ({e.strerror or e}); encoding again next time")
    return feats


def _summary(cfg, data: TaskData, path: str, max_length: int, seeds: list[int], runs: list[dict]) -> dict:
    """What ``out/metrics.json`` holds: mean and standard deviation over the seeds, and every run."""
    from eliquare import __version__
    from eliquare.config import to_dict

    scores = [r["score"] for r in runs]
    mean, std = _mean_std(scores)
    test_mean = {}
    for key, value in runs[0]["test"].items():
        if isinstance(value, (int, float)):
            m, s = _mean_std([r["test"][key] for r in runs])
            test_mean[key] = m
            if len(runs) > 1:
                test_mean[key + "_std"] = s
    return {
        "eliquare": __version__,
        "kind": "finetune",
        "model": cfg.model,
        "model_path": path,
        "task": cfg.task,
        "metric": MAIN_METRIC[cfg.task],
        "score": mean,
        "std": std,
        "seeds": seeds,
        "scores": scores,
        "test": test_mean if len(runs) > 1 else runs[0]["test"],
        "data": {
            **data.files,
            "split": data.split,
            "train_examples": len(data.train),
            "dev_examples": len(data.dev),
            "test_examples": len(data.test),
        },
        "labels": data.labels,
        "max_length": max_length,
        "parameters": runs[0]["parameters"],
        "encoder_parameters": runs[0]["encoder_parameters"],
        "size_mb": runs[0]["size_mb"],
        "examples_per_second": statistics.fmean(r["examples_per_second"] for r in runs),
        "tokens_per_second": statistics.fmean(r["tokens_per_second"] for r in runs),
        "train_seconds": round(sum(r["train_seconds"] for r in runs), 2),
        "machine": " | ".join(dict.fromkeys(r["machine"] for r in runs if r.get("machine"))),  # seeds' machines
        "runs": runs,
        "config": to_dict(cfg),
    }


def _reused_run(out: Path, seed: int, seeds: list[int], run: dict, old_seeds: list[int]) -> dict:
    """A seed's run kept from an earlier result of ``out`` (the same settings but for the list of seeds), its files
    moved to where this list puts them: ``out`` itself for one seed, ``out/seed-N`` for several."""
    here = out if len(seeds) == 1 else out / f"seed-{seed}"
    there = out if len(old_seeds) == 1 else out / f"seed-{seed}"
    if here != there:
        here.mkdir(parents=True, exist_ok=True)
        for name in ("predictions.tsv", "model"):
            if (there / name).exists():
                shutil.rmtree(here / name, ignore_errors=True)
                (there / name).replace(here / name)
        if there != out:
            shutil.rmtree(there, ignore_errors=True)
    if here != out:
        write_json(here / "metrics.json", run, indent=2)
    notice(f"seed {seed}: kept from the earlier run with the same settings (score {run['score']:.4f})")
    return run


def finetune(
    cfg: FinetuneConfig,
    reuse: dict[int, dict] | None = None,
    reuse_layout: list[int] | None = None,
    on_seed: Callable[[list[dict], list[int]], None] | None = None,
) -> dict:
    """Fine-tune ``cfg.model`` on one dataset with one or more seeds; returns the summary written to
    ``cfg.out/metrics.json``. The frozen-embedding tasks (embed-classify, retrieval, agreement) fine-tune nothing:
    ``eliquare.evaluate.embedding_tasks`` scores them.

    ``reuse``: seed -> the run record of that seed in ``cfg.out``'s earlier result, made with the same settings but
    another list of seeds (``reuse_layout``; `eliquare evaluate` checks that): those seeds are kept, the others
    run. ``on_seed(runs, seeds)``: called when a seed is done and others are still to run, with the runs so far
    (`eliquare evaluate` records them, so that an interrupted job keeps its finished seeds)."""
    from eliquare.evaluate.embedding_tasks import EMBEDDING_TASKS, run_embedding_task

    if cfg.task in EMBEDDING_TASKS:
        return run_embedding_task(cfg)
    out = check_writable(cfg.out)
    if (out / "metrics.json").exists() and not cfg.overwrite:
        raise EliquareError(f"{out} already holds results (metrics.json); give --overwrite or another --out")
    data = read_task_splits(cfg)
    path, tokenizer, model_config = _load_tokenizer(cfg)
    max_length = _max_length(cfg, tokenizer, model_config)
    feats = _encode_splits(cfg, data, tokenizer, max_length)
    vocab = None
    if cfg.task_vocabulary:
        vocab = TaskVocabulary.of([f for split in feats.values() for f in split[0]], tokenizer, model_config.vocab_size)
        feats = {split: (vocab.remap(f), owners, stats) for split, (f, owners, stats) in feats.items()}
        notice(
            f"fine-tuning on the task's own vocabulary: {len(vocab.kept_ids):,} of {vocab.full_size:,} embedding "
            "rows (exact: the same tokens and hidden states; --no-task-vocabulary for all of them)"
        )
    print(
        f"eliquare: {cfg.task} on {data.split}: {len(data.train)} train, {len(data.dev)} dev, {len(data.test)} "
        f"test examples, {len(data.labels)} labels, max length {max_length}",
        file=sys.stderr,
        flush=True,
    )

    seeds = list(cfg.seeds) if cfg.seeds else [cfg.seed]
    out.mkdir(parents=True, exist_ok=True)
    reuse = reuse or {}
    runs = []
    for seed in seeds:
        runs.append(
            _reused_run(out, seed, seeds, reuse[seed], reuse_layout or [])
            if seed in reuse
            else _train_one(cfg, data, tokenizer, feats, vocab, out if len(seeds) == 1 else out / f"seed-{seed}", seed)
        )
        if on_seed is not None and len(runs) < len(seeds):
            on_seed(list(runs), seeds)
    if reuse_layout is not None:  # the seeds of the earlier result that are not in this list
        for d in out.glob("seed-*"):
            if d.is_dir() and (len(seeds) == 1 or d.name.removeprefix("seed-") not in {str(x) for x in seeds}):
                shutil.rmtree(d, ignore_errors=True)
    summary = _summary(cfg, data, path, max_length, seeds, runs)
    write_json(out / "metrics.json", summary, indent=2)
    spread = f" ± {100 * summary['std']:.2f}" if len(runs) > 1 else ""
    print(
        f"{cfg.task} {summary['metric']} on test: {100 * summary['score']:.2f}{spread} ({len(runs)} seed(s)); "
        f"results in {out}",
        flush=True,
    )
    return summary
