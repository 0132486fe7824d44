"""Fit a masked-LM head on a frozen teacher that ships without one (such as multilingual-e5-small).

The soft-target cross-entropy of distillation (Eq. 4) needs the teacher's distribution over the
vocabulary at masked positions. A sentence-embedding model stores no MLM head; this fits one on the
frozen encoder's last hidden states: the head's transform (dense + activation + LayerNorm) and its
output bias are trained, its decoder stays tied to the frozen word embeddings. Held-out masked-token
accuracy is printed as it goes and kept in ``OUT/head_report.json``. Expect it to be low on e5: its
last layer is tuned for sentence embeddings, not for predicting tokens.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from eliquare.config import FitHeadConfig, to_dict
from eliquare.errors import EliquareError, check_output_dir

REPORT = "head_report.json"


def _read_ids(cfg: FitHeadConfig, tokenizer) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids of the training and held-out sentences: the corpus prepared (and cached) as distill prepares it,
    with its de-duplication and hash split."""
    from eliquare.corpus import prepare_corpus

    data = prepare_corpus(
        cfg.corpus,
        tokenizer,
        cfg.corpus_options,
        max_length=cfg.max_length,
        validation_fraction=cfg.validation_fraction,
        cache_dir=cfg.cache_dir,
        log=print,
    )
    train = list(data.train.select(range(min(cfg.max_steps * cfg.batch_size, len(data.train))))["input_ids"])
    heldout = list(data.validation.select(range(min(cfg.eval_sentences, len(data.validation))))["input_ids"])
    return train, heldout


def _trainable_head_parameters(model) -> list:
    """The MLM head's own parameters: everything in the head except what it shares with the input embeddings."""
    from eliquare.models import mlm_head_of

    tied = {id(model.get_input_embeddings().weight)}
    for p in model.parameters():
        p.requires_grad_(False)
    params = [p for p in mlm_head_of(model).parameters() if id(p) not in tied]
    for p in params:
        p.requires_grad_(True)
    return params


def _masked_step(model, collator, ids: list[list[int]], device):
    """Logits and labels at the masked positions only; the gradient stays in the head (the encoder is frozen)."""
    from eliquare.distill.masking import IGNORE_INDEX
    from eliquare.models import masked_lm_logits

    input_ids, attention = collator.pad([{"input_ids": x} for x in ids])
    masked, labels = collator.mask(input_ids, attention)
    labels = labels.to(device)
    out = masked_lm_logits(model, masked.to(device), attention.to(device), labels, head_only=True)
    return out["logits"], labels[labels != IGNORE_INDEX]


def _evaluate(model, collator, heldout_ids, device, batch_size: int = 64) -> dict:
    import torch

    correct, total, loss_sum = 0, 0, 0.0
    with torch.no_grad():
        for start in range(0, len(heldout_ids), batch_size):
            logits, labels = _masked_step(model, collator, heldout_ids[start : start + batch_size], device)
            correct += int((logits.argmax(-1) == labels).sum())
            total += int(labels.numel())
            loss_sum += float(torch.nn.functional.cross_entropy(logits.float(), labels, reduction="sum"))
    return {"accuracy": correct / max(total, 1), "loss": loss_sum / max(total, 1), "masked_tokens": total}


def _load_frozen_teacher(cfg: FitHeadConfig):
    """The teacher, checked to have mask and padding tokens (masking needs both), on its device in eval mode
    (no dropout in the frozen encoder); returns ``(teacher, device)``."""
    import torch

    from eliquare.teachers import load_teacher

    teacher = load_teacher(cfg.teacher)
    tokenizer = teacher.tokenizer
    if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
        raise EliquareError(
            f"the tokenizer of teacher {cfg.teacher} has no mask or padding token; a masked-LM tokenizer is needed"
        )
    if teacher.has_mlm_head:
        print(f"note: teacher {cfg.teacher} already has an MLM head; training it further on the frozen encoder")
    device = torch.device("cuda" if torch.cuda.is_available() and not cfg.use_cpu else "cpu")
    teacher.model.to(device).eval()
    return teacher, device


def fit_head(cfg: FitHeadConfig) -> int:
    """``eliquare teacher fit-head``: fit and save; the output directory loads with AutoModelForMaskedLM."""
    import torch

    from eliquare.distill.masking import collator_for

    out = check_output_dir(cfg.out, cfg.overwrite)
    start_time = time.perf_counter()
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # the head's initialisation
    teacher, device = _load_frozen_teacher(cfg)
    model, tokenizer = teacher.model, teacher.tokenizer
    params = _trainable_head_parameters(model)

    train_ids, heldout_ids = _read_ids(cfg, tokenizer)
    random.Random(cfg.seed).shuffle(train_ids)
    # uniform masking (no frequency smoothing); masks are seeded by batch content, so the held-out
    # set is masked the same way at every evaluation
    collator = collator_for(
        tokenizer,
        np.ones(len(tokenizer), dtype=np.int64),
        mlm_probability=cfg.mlm_probability,
        smoothing=0.0,
        seed=cfg.seed,
    )
    n_params = sum(p.numel() for p in params)
    print(
        f"fitting the MLM head of {cfg.teacher} ({n_params:,} trainable parameters, encoder frozen) on "
        f"{len(train_ids):,} sentences for {cfg.max_steps} steps of {cfg.batch_size}; held out: "
        f"{len(heldout_ids):,} sentences, on {device}",
        flush=True,
    )
    history = _train_head(cfg, model, params, collator, train_ids, heldout_ids, device)
    report = {
        "teacher": cfg.teacher,
        "teacher_path": teacher.path,
        "teacher_had_mlm_head": teacher.has_mlm_head,
        "trainable_parameters": n_params,
        "train_sentences": len(train_ids),
        "heldout_sentences": len(heldout_ids),
        "heldout_masked_token_accuracy": history[-1]["heldout_accuracy"],
        "heldout_masked_token_accuracy_before": history[0]["heldout_accuracy"],
        "history": history,
        "seconds": round(time.perf_counter() - start_time, 1),
        "device": str(device),
        "config": to_dict(cfg),
    }
    _save(model, tokenizer, Path(teacher.path), out, report, overwrite=cfg.overwrite)
    print(
        f"held-out masked-token accuracy {report['heldout_masked_token_accuracy_before']:.2%} -> "
        f"{report['heldout_masked_token_accuracy']:.2%}; wrote {out} (report in {out / REPORT})"
    )
    return 0


def _train_head(cfg: FitHeadConfig, model, params: list, collator, train_ids, heldout_ids, device) -> list[dict]:
    """AdamW on the head's parameters, linear warm-up (10%) and decay; held-out accuracy every ``eval_steps``."""
    import torch

    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    warmup = max(1, cfg.max_steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (cfg.max_steps - s) / max(1, cfg.max_steps - warmup)))
    )
    history = []

    def measure(step: int, train_loss: float | None) -> None:
        result = _evaluate(model, collator, heldout_ids, device)
        history.append({"step": step, "train_loss": train_loss, **{f"heldout_{k}": v for k, v in result.items()}})
        shown = "-" if train_loss is None else f"{train_loss:.3f}"
        print(
            f"step {step:>5}/{cfg.max_steps}  train loss {shown}  held-out masked-token accuracy "
            f"{result['accuracy']:.2%} ({result['masked_tokens']:,} tokens), loss {result['loss']:.3f}",
            flush=True,
        )

    measure(0, None)
    running, count = 0.0, 0
    for step in range(1, cfg.max_steps + 1):
        first = ((step - 1) * cfg.batch_size) % len(train_ids)
        batch = [train_ids[(first + i) % len(train_ids)] for i in range(min(cfg.batch_size, len(train_ids)))]
        logits, labels = _masked_step(model, collator, batch, device)
        if labels.numel() == 0:
            continue
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        optimizer.step()
        schedule.step()
        value = loss.item()
        if not math.isfinite(value):
            raise EliquareError(f"the head's loss became {value} at step {step}; lower --learning-rate")
        running, count = running + value, count + 1
        if step % cfg.eval_steps == 0 or step == cfg.max_steps:
            measure(step, running / max(count, 1))
            running, count = 0.0, 0
    return history


def _save(model, tokenizer, teacher_path: Path, out: Path, report: dict, *, overwrite: bool) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        model.cpu().save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        spm_model = teacher_path / "sentencepiece.bpe.model"  # the slow tokenizer's file, when the teacher has one
        if teacher_path.is_dir() and spm_model.is_file() and not (tmp / spm_model.name).exists():
            shutil.copyfile(spm_model, tmp / spm_model.name)
        (tmp / REPORT).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.chmod(0o755)
        if out.exists():
            if not overwrite and any(out.iterdir()):
                raise EliquareError(f"--out {out} exists and is not empty; choose another directory or add --overwrite")
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
