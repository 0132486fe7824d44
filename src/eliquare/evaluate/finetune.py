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

This module is the stage and its loop over seeds; the Trainer it drives (schedule, scoring, keeping the best
evaluation) is ``eliquare.evaluate.finetune_trainer``, and the encoded splits and their cache are
``eliquare.evaluate.task_encodings``.
"""

from __future__ import annotations

import shutil
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from eliquare.atomic import write_json
from eliquare.config import FinetuneConfig
from eliquare.errors import EliquareError, check_writable, notice
from eliquare.evaluate.finetune_trainer import predict_test, train_keeping_best
from eliquare.evaluate.metrics import MAIN_METRIC
from eliquare.evaluate.task_encodings import encode_splits
from eliquare.evaluate.task_vocab import TaskVocabulary
from eliquare.models import Head, length_limit, load_config, load_model, load_tokenizer, resolve_model
from eliquare.speed import machine
from eliquare.tasks.encoding import quiet_transformers
from eliquare.tasks.files import TaskData
from eliquare.tasks.readers import read_task_splits

TASK_HEADS: dict[str, Head] = {
    "pos": "token-classification",
    "ner": "token-classification",
    "classify": "sequence-classification",
}


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
    trainer, scorer, keep, train_seconds = train_keeping_best(cfg, data, model, tokenizer, feats, work, seed)
    preds, test_scores, predict_seconds = predict_test(cfg, data, trainer, scorer, feats)

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


def _on_task_vocabulary(feats: dict, tokenizer, model_config) -> tuple[TaskVocabulary, dict]:
    """The task's own vocabulary (the embedding rows its features use) and the features in its ids."""
    vocab = TaskVocabulary.of([f for split in feats.values() for f in split[0]], tokenizer, model_config.vocab_size)
    feats = {split: (vocab.remap(f), owners, stats) for split, (f, owners, stats) in feats.items()}
    notice(
        f"fine-tuning on the task's own vocabulary: {len(vocab.kept_ids):,} of {vocab.full_size:,} embedding "
        "rows (exact: the same tokens and hidden states; --no-task-vocabulary for all of them)"
    )
    return vocab, feats


def _features(cfg: FinetuneConfig, data: TaskData, tokenizer, model_config, max_length: int):
    """``(features, soft targets summary or None, task vocabulary or None)``: the encoded splits, the teacher's soft
    targets on the training split and the corpus (task distillation), renumbered to the task's vocabulary."""
    feats = encode_splits(cfg, data, tokenizer, max_length)
    soft = None
    if cfg.soft_teacher:  # before the task vocabulary: the corpus examples' tokens belong to it
        from eliquare.evaluate.soft_targets import soft_train_features

        feats["train"], soft = soft_train_features(cfg, data, tokenizer, max_length, feats["train"])
    vocab = None
    if cfg.task_vocabulary:
        vocab, feats = _on_task_vocabulary(feats, tokenizer, model_config)
    return feats, soft, vocab


def _remove_other_seeds(out: Path, seeds: list[int]) -> None:
    """Remove the seed directories of an earlier result that are not in this list of seeds (all of them for one
    seed, whose files lie in ``out`` itself)."""
    for d in out.glob("seed-*"):
        if d.is_dir() and (len(seeds) == 1 or d.name.removeprefix("seed-") not in {str(x) for x in seeds}):
            shutil.rmtree(d, ignore_errors=True)


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
    feats, soft, vocab = _features(cfg, data, tokenizer, model_config, max_length)
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
    if reuse_layout is not None:
        _remove_other_seeds(out, seeds)
    summary = _summary(cfg, data, path, max_length, seeds, runs)
    if soft is not None:
        summary["soft_targets"] = soft
    write_json(out / "metrics.json", summary, indent=2)
    spread = f" ± {100 * summary['std']:.2f}" if len(runs) > 1 else ""
    print(
        f"{cfg.task} {summary['metric']} on test: {100 * summary['score']:.2f}{spread} ({len(runs)} seed(s)); "
        f"results in {out}",
        flush=True,
    )
    return summary
