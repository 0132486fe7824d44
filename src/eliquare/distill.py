"""The distillation stage: teacher + corpus -> trained student directory.

Built on transformers' Trainer (checkpoints, exact resume, torchrun/accelerate data parallelism,
gradient accumulation, best-checkpoint selection); what is ours is the loss step:

- the teacher runs under ``torch.inference_mode``;
- the vocabulary projection (the largest matmul of the step) is computed only at the masked
  positions, for teacher and student alike;
- the validation loss is the same weighted distillation loss, on the same masks at every evaluation
  (masks are seeded by batch content, see ``eliquare.masking``), and the
  checkpoint with the lowest one is what ends up in ``--out``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_callback import ProgressCallback

from eliquare import __version__
from eliquare.atomic import write_json
from eliquare.checkpoints import CompleteCheckpoints, NoStepPastTheEnd, refresh_marker, resume_point
from eliquare.config import LAYER_MAP_ALIASES, DistillConfig, check_max_length
from eliquare.corpus import expand_paths, prepare_corpus
from eliquare.corpus.languages import by_language, corpus_paths, parse_weights, prepare_languages
from eliquare.errors import EliquareError, check_writable
from eliquare.health import HealthMonitor, HealthSample, ProbeSet
from eliquare.hub import check_push, push
from eliquare.losses import (TERMS, LossWeights, Objective, attention_kl_loss, cosine_loss, hidden_mse_loss,
                             mlm_loss, sentence_loss, similarity_loss, soft_target_loss, value_relation_loss)
from eliquare.masking import IGNORE_INDEX, collator_for
from eliquare.recipe import PAPER_LEARNING_RATE, Recipe, resolve_recipe
from eliquare.models import (count_parameters, encoder_of, length_limit, masked_lm_logits, mlm_head_of,
                             use_eager_attention, use_masked_lm_forward)
from eliquare.publish import finish_student_dir
from eliquare.speed import machine, student_and_teacher
from eliquare.student import (build_student, check_layer_map, freeze_position_embeddings, hidden_targets,
                              select_layers)
from eliquare.teachers import load_teacher, teacher_embedding_spec
from eliquare.teacher_cache import CACHE_DIR_NAME, TeacherCache, cache_unsupported
from eliquare.training import autocast, resolve_bf16, trainer_arguments
from eliquare.vocab import format_report, reduce_on_corpus, retokenisation_notice, save_tokenizer


def distillation_losses(student, teacher, batch: dict, objective: Objective, *, head_only: bool = False,
                        stats: dict | None = None) -> dict:
    """The terms of Eq. 4 for one batch; terms with weight 0 are skipped (the teacher head too).

    With ``objective.hidden_pairs`` the hidden-state term is the mean over those (student, teacher) layer
    pairs; ``stats``, if given, gains the student's masked-token hits and counts."""
    if objective.embedding is not None:
        return embedding_losses(student, teacher, batch, objective, head_only=head_only, stats=stats)
    if objective.cross is not None:
        return cross_token_losses(student, teacher, batch, objective, head_only=head_only, stats=stats)
    weights, hidden_pairs, centre = objective.weights, objective.hidden_pairs, objective.centre
    labels = batch["labels"]
    masked = labels != IGNORE_INDEX
    extra = _layerwise_outputs(objective)
    out = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels,
                  head_only=head_only, **extra)  # models.masked_lm_logits
    need_teacher_logits = weights.ce > 0
    if "teacher_hidden" in batch:  # the teacher's states of the unmasked sentences, computed once (teacher_cache)
        t_out = {"hidden": batch["teacher_hidden"], "logits": None}
        if need_teacher_logits and masked.any():
            with torch.inference_mode():
                t_out["logits"] = mlm_head_of(teacher)(batch["teacher_hidden"][masked])
    else:
        with torch.inference_mode():
            t_out = masked_lm_logits(teacher, batch["input_ids"], batch["attention_mask"], labels,
                                     logits=need_teacher_logits, **extra)
    parts: dict[str, torch.Tensor] = layerwise_losses(out, t_out, batch["attention_mask"], objective)
    if weights.cos > 0 and hidden_pairs:
        mask = batch["attention_mask"]
        parts["cos"] = torch.stack([cosine_loss(out["layers"][i], t_out["layers"][j].clone(), mask, centre=centre)
                                    for i, j in hidden_pairs]).mean()
    elif weights.cos > 0:
        parts["cos"] = cosine_loss(out["hidden"], t_out["hidden"].clone(), batch["attention_mask"], centre=centre)
    if stats is not None and masked.any():
        stats["correct"] = stats.get("correct", 0) + int((out["logits"].argmax(-1) == labels[masked]).sum())
        stats["masked"] = stats.get("masked", 0) + int(masked.sum())
    if masked.any():
        if need_teacher_logits:
            parts["ce"] = soft_target_loss(out["logits"], t_out["logits"].clone(), objective.temperature)
        if weights.mlm > 0:
            parts["mlm"] = mlm_loss(out["logits"], labels[masked])
    return parts


def cross_token_losses(student, teacher, batch: dict, objective: Objective, *, head_only: bool = False,
                       stats: dict | None = None) -> dict:
    """Eq. 4 with the student on an amplified vocabulary and the teacher on its own (``--vocab-amp``): the teacher
    reads the student's text spelled in its pieces (``vocab.amp.CrossTokenisation``); the hidden-state term compares
    each student token with its span's mean teacher state; the soft targets are taken at masked old pieces. A
    sentence whose teacher spelling exceeds the teacher's limit is cut for both first (``CrossTokenisation.fit``)."""
    cross, weights = objective.cross, objective.weights
    input_ids, mask, labels = cross.fit(batch["input_ids"], batch["attention_mask"], batch["labels"])
    masked = labels != IGNORE_INDEX
    out = student(input_ids=input_ids, attention_mask=mask, labels=labels, head_only=head_only)
    view = cross.teacher_batch(input_ids, mask, labels)
    with torch.inference_mode():
        t_out = masked_lm_logits(teacher, view["input_ids"], view["attention_mask"], view["labels"],
                                 logits=weights.ce > 0 and bool(view["ce_positions"].any()))
    parts: dict[str, torch.Tensor] = {}
    if weights.cos:
        pooled = cross.pooled(t_out["hidden"].clone(), view["owner"], input_ids.shape)
        parts["cos"] = cosine_loss(out["hidden"], pooled, mask, centre=objective.centre)
    if stats is not None and masked.any():
        stats["correct"] = stats.get("correct", 0) + int((out["logits"].argmax(-1) == labels[masked]).sum())
        stats["masked"] = stats.get("masked", 0) + int(masked.sum())
    if masked.any():
        if weights.ce and view["ce_positions"].any():
            s_logits = out["logits"][view["ce_positions"]][:, : cross.old_size]
            parts["ce"] = soft_target_loss(s_logits, t_out["logits"].clone(), objective.temperature)
        if weights.mlm:
            parts["mlm"] = mlm_loss(out["logits"], labels[masked])
    return parts


def _layerwise_outputs(objective: Objective) -> dict:
    """What the forward passes must return for the objective's hidden-state and layer-wise terms."""
    w = objective.weights
    return {"all_layers": bool(objective.hidden_pairs) or w.hidden > 0, "attentions": w.attn > 0,
            "values": w.value > 0}


def layerwise_losses(out: dict, t_out: dict, mask: torch.Tensor, objective: Objective) -> dict:
    """The layer-wise terms beyond the paper, over ``objective.layer_pairs`` (student layer n <- teacher layer 2n,
    0-based here): TinyBERT's hidden-state MSE and attention KL (means over the pairs), MiniLM's value-relation KL
    of the last pair."""
    w, pairs, parts = objective.weights, objective.layer_pairs, {}
    if not pairs:
        return parts
    if w.hidden:
        parts["hidden"] = torch.stack([hidden_mse_loss(out["layers"][i + 1], t_out["layers"][j + 1].clone(), mask)
                                       for i, j in pairs]).mean()
    if w.attn:
        parts["attn"] = torch.stack([attention_kl_loss(out["attentions"][i], t_out["attentions"][j].clone(), mask)
                                     for i, j in pairs]).mean()
    if w.value:
        i, j = pairs[-1]
        parts["value"] = value_relation_loss(out["values"][i], t_out["values"][j].clone(), mask,
                                             objective.attention_heads)
    return parts


def embedding_losses(student, teacher, batch: dict, objective: Objective, *, head_only: bool = False,
                     stats: dict | None = None) -> dict:
    """The embedding objective's terms for one batch (``--objective embedding``): on the unmasked, prompted text
    (``input_ids``), the student's pooled sentence embedding against the teacher's (``sentence``), their in-batch
    similarity distributions (``contrastive``) and the token-level hidden-state term (``cos``); on the masked copy
    (``masked_input_ids``, made only when their weights are > 0), the MLM and soft-target terms."""
    weights, hidden_pairs = objective.weights, objective.hidden_pairs
    ids, mask = batch["input_ids"], batch["attention_mask"]
    pool_mask = batch.get("pool_mask")
    extra = _layerwise_outputs(objective)
    out = student(input_ids=ids, attention_mask=mask, labels=None, logits=False, **extra)
    with torch.inference_mode():
        t_out = masked_lm_logits(teacher, ids, mask, None, logits=False, **extra)
        t_emb = teacher.sentence_pooler(t_out["hidden"], mask, pool_mask)
    parts: dict[str, torch.Tensor] = layerwise_losses(out, t_out, mask, objective)
    if weights.sentence or weights.contrastive:
        s_emb = getattr(student, "module", student).sentence_pooler(out["hidden"], mask, pool_mask)
        if weights.sentence:
            parts["sentence"] = sentence_loss(s_emb, t_emb.clone(), objective.sentence_loss)
        if weights.contrastive:
            parts["contrastive"] = similarity_loss(s_emb, t_emb.clone(), objective.contrastive_temperature)
    if weights.cos and hidden_pairs:
        parts["cos"] = torch.stack([cosine_loss(out["layers"][i], t_out["layers"][j].clone(), mask,
                                                centre=objective.centre) for i, j in hidden_pairs]).mean()
    elif weights.cos:
        parts["cos"] = cosine_loss(out["hidden"], t_out["hidden"].clone(), mask, centre=objective.centre)
    if "masked_input_ids" in batch and (weights.mlm or weights.ce):
        masked_batch = {"input_ids": batch["masked_input_ids"], "attention_mask": mask, "labels": batch["labels"]}
        token_objective = Objective(LossWeights(ce=weights.ce, cos=0.0, mlm=weights.mlm), objective.temperature)
        parts.update(distillation_losses(student, teacher, masked_batch, token_objective, head_only=head_only,
                                         stats=stats))
    return parts


class DistillationTrainer(NoStepPastTheEnd, Trainer):
    """Trainer whose loss is the distillation objective; the teacher rides along, frozen."""

    def __init__(self, *args, teacher, objective: Objective, head_warmup_steps: int = 0,
                 health: HealthMonitor | None = None, stop_on_collapse: bool = False, bf16: bool = False,
                 teacher_cache: TeacherCache | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.bf16 = bf16  # autocast of both forward passes; the losses cast to fp32 (eliquare.losses)
        self.teacher_cache = teacher_cache
        self.positions = {"real": 0, "all": 0}  # training positions, for the padding share
        self.teacher = teacher.to(self.args.device).eval()
        self.teacher.requires_grad_(False)
        self.objective = objective
        self.head_warmup_steps = head_warmup_steps  # steps in which a fresh head's MLM gradient stays in the head
        self.health = health
        self.stop_on_collapse = stop_on_collapse
        use_masked_lm_forward(self.model)
        self.loss_is_scaled_for_ga = False  # our loss is a per-batch mean: let the Trainer divide by GA
        self._parts_sum: dict[str, float] = defaultdict(float)
        self._parts_n = 0
        self._tokens_at_log = 0
        self._time_at_log = None
        self._eval_seconds = 0.0  # evaluation time since the last log, left out of tokens/s

    @property
    def weights(self) -> LossWeights:
        return self.objective.weights

    def with_teacher_states(self, batch: dict, split: str) -> dict:
        """The batch with the teacher's cached states of its sentences (when the run has a teacher cache)."""
        rows = batch.pop("rows", None)
        if self.teacher_cache is not None and rows is not None:
            batch["teacher_hidden"] = self.teacher_cache.split(split).gather(rows, batch["input_ids"].shape[1],
                                                                             batch["input_ids"].device)
        return batch

    def losses(self, model, batch: dict, split: str, **kwargs) -> dict:
        batch = self.with_teacher_states(batch, split)
        with autocast(self.bf16, self.args.device):
            return distillation_losses(model, self.teacher, batch, self.objective, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        head_only = model.training and self.state.global_step < self.head_warmup_steps
        if model.training:
            mask = inputs["attention_mask"]
            self.positions["real"] += int(mask.sum())
            self.positions["all"] += mask.numel()
        parts = self.losses(model, inputs, "train", head_only=head_only)
        loss = self.weights.combine(parts)
        if model.training:
            for name, value in parts.items():
                self._parts_sum[name] += float(value.detach())
            self._parts_n += 1
        return (loss, parts) if return_outputs else loss

    def log(self, logs: dict, start_time: float | None = None) -> None:
        if "loss" in logs and self._parts_n:
            for name, total in self._parts_sum.items():
                logs[f"loss_{name}"] = round(total / self._parts_n, 5)
            self._parts_sum.clear()
            self._parts_n = 0
            now, tokens = time.perf_counter(), self.state.num_input_tokens_seen
            training_seconds = now - (self._time_at_log or now) - self._eval_seconds
            if self._time_at_log is not None and training_seconds > 0:
                logs["tokens_per_second"] = round((tokens - self._tokens_at_log) / training_seconds, 1)
            if self.positions["all"]:
                logs["padding_share"] = round(self.padding_share, 4)
            self._time_at_log, self._tokens_at_log, self._eval_seconds = now, tokens, 0.0
        super().log(logs, start_time)

    @property
    def padding_share(self) -> float:
        """Share of the training positions so far that were padding."""
        return 1.0 - self.positions["real"] / max(self.positions["all"], 1)

    @torch.no_grad()
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict:
        """Validation distillation loss (and its terms); the masks are the same at every evaluation."""
        started = time.perf_counter()
        dataloader = self.get_eval_dataloader(eval_dataset)
        model = self.model
        was_training = model.training
        model.eval()
        names = ("loss", *TERMS)
        sums = torch.zeros(len(names) + 3, dtype=torch.float64, device=self.args.device)
        with torch.random.fork_rng(devices=[]):  # evaluation must not move the training RNG
            for batch in dataloader:
                batch = self._prepare_inputs(batch)
                stats: dict = {}
                parts = self.losses(model, batch, "validation", stats=stats)
                sums[-3] += stats.get("correct", 0)
                sums[-2] += stats.get("masked", 0)
                parts["loss"] = self.weights.combine(parts)
                for i, name in enumerate(names):
                    if name in parts:
                        sums[i] += float(parts[name])
                sums[-1] += 1
        sums = self.accelerator.reduce(sums, reduction="sum")
        n = max(float(sums[-1]), 1.0)
        metrics = {f"{metric_key_prefix}_{name}": float(sums[i]) / n for i, name in enumerate(names)
                   if name == "loss" or getattr(self.weights, name)}
        if float(sums[-2]):
            metrics[f"{metric_key_prefix}_mlm_accuracy"] = float(sums[-3]) / float(sums[-2])
        if self.health is not None:  # the student itself, not only its loss (issue 10)
            health = self.health.measure(model)
            metrics[f"{metric_key_prefix}_collapse"] = health.last
            metrics[f"{metric_key_prefix}_cka"] = health.cka
            metrics[f"{metric_key_prefix}_neighbours"] = health.neighbours
            if health.probe is not None:
                metrics[f"{metric_key_prefix}_probe"] = health.probe
            metrics[f"{metric_key_prefix}_collapse_layers"] = [round(c, 4) for c in health.collapse]
            collapsing = self.health.is_collapsing(health)
            if collapsing and self.is_world_process_zero():
                print(self.health.warning(health), file=sys.stderr, flush=True)
            if collapsing and self.stop_on_collapse:
                print(f"stopping at step {self.state.global_step}: --stop-on-collapse", file=sys.stderr, flush=True)
                self.control.should_training_stop = True
        if was_training:
            model.train()
        self._eval_seconds += time.perf_counter() - started
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


class EpochCheckpoints(TrainerCallback):
    """Evaluate and checkpoint at the end of every epoch, on top of every N steps (paper: each epoch)."""

    def __init__(self) -> None:
        self.last_evaluated = -1

    def on_evaluate(self, args, state, control, **kwargs):
        self.last_evaluated = state.global_step

    def on_epoch_end(self, args, state, control, **kwargs):
        if state.global_step != self.last_evaluated:
            control.should_evaluate = True
            control.should_save = True
        return control


class TimeBudget(TrainerCallback):
    """Stop cleanly once the wall-clock budget is spent: the step's evaluation and checkpoint still happen."""

    def __init__(self, minutes: float) -> None:
        self.seconds = minutes * 60
        self.started = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        spent = self.started is not None and time.perf_counter() - self.started >= self.seconds
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([float(spent)], device=args.device)  # all processes stop at the same step
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            spent = bool(flag.item())
        if spent:
            control.should_training_stop = True
            control.should_evaluate = True
            control.should_save = True
        return control


class DistillProgress(ProgressCallback):
    """The progress bar shows loss and tokens/s (ETA is tqdm's); evaluations print one line each."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or self.training_bar is None or not logs:
            return
        if "eval_loss" in logs:
            terms = " ".join(f"{k[5:]}={v:.4f}" for k, v in logs.items() if k.startswith("eval_") and
                             isinstance(v, float))
            if "eval_collapse" in logs:
                self._collapse = f"{logs['eval_collapse']:.3f}"
            self.training_bar.write(f"step {state.global_step} (epoch {state.epoch or 0:.2f}) validation: {terms}",
                                    file=sys.stderr)
        elif "loss" in logs:
            postfix = {"loss": f"{logs['loss']:.4f}"}
            if "tokens_per_second" in logs:
                postfix["tok/s"] = f"{logs['tokens_per_second']:.0f}"
            if getattr(self, "_collapse", None):
                postfix["collapse"] = self._collapse  # the last evaluation's last-layer pairwise cosine
            self.training_bar.set_postfix(postfix, refresh=True)


PARTIAL_MARK = ".eliquare-partial"  # in the directory an --overwrite run builds beside OUT (removed by the swap)


def checkpoint_dir(cfg: DistillConfig) -> Path:
    """Where the run's checkpoints live: ``--checkpoint-dir``, or ``OUT.checkpoints`` beside OUT (never inside it:
    OUT holds only what a user publishes, and checkpoints are pickles of optimizer state)."""
    out = Path(cfg.out).expanduser()
    return Path(cfg.checkpoint_dir).expanduser() if cfg.checkpoint_dir else out.parent / f"{out.name}.checkpoints"


def _swap_in(new: Path, target: Path) -> None:
    """Put directory ``new`` where ``target`` is; an existing ``target`` goes only once ``new`` is in place."""
    if not target.exists():
        new.rename(target)
        return
    old = Path(tempfile.mkdtemp(prefix=f"{target.name}.replaced-", dir=target.parent))
    target.rename(old / target.name)
    try:
        new.rename(target)
    except OSError:
        (old / target.name).rename(target)  # the old one back in its place
        raise
    finally:
        shutil.rmtree(old)


@dataclass
class RunDirectory:
    """Where a run writes (``work``, ``work_checkpoints``) and where its student and checkpoints end up (``out``,
    ``checkpoints``).

    A new run or a ``--resume`` writes in OUT and the checkpoint directory themselves. ``--overwrite`` builds the
    new result in the siblings ``OUT.partial`` and ``CHECKPOINTS.partial`` and swaps them in only once it is
    complete: a run that fails leaves the old ones as they were, and no file of the old run survives into the new
    one. Without ``--keep-checkpoints`` the checkpoints go once the student is written."""

    out: Path
    work: Path
    checkpoints: Path
    work_checkpoints: Path
    keep_checkpoints: bool = False
    resume: bool = False

    @property
    def replaces(self) -> bool:
        return self.work != self.out

    def begin(self, settings: dict) -> None:
        """Make ``work`` with the run's settings in it (main process only), once every input has been checked."""
        for work, final in ((self.work, self.out), (self.work_checkpoints, self.checkpoints)):
            if work != final:
                shutil.rmtree(work, ignore_errors=True)  # an interrupted --overwrite's leftover (it has the mark)
                work.mkdir(parents=True)
                (work / PARTIAL_MARK).write_text(f"eliquare distill is building the replacement of {final} here; "
                                                 "it is swapped in when the run is complete\n")
            work.mkdir(parents=True, exist_ok=True)
        if not self.resume or not (self.work_checkpoints / RUN_SETTINGS).is_file():  # a --resume keeps its own
            tmp = self.work_checkpoints / f".{RUN_SETTINGS}.tmp"
            tmp.write_text(json.dumps({"eliquare_version": __version__, "settings": settings}, indent=1,
                                      ensure_ascii=False) + "\n", encoding="utf-8")
            tmp.replace(self.work_checkpoints / RUN_SETTINGS)

    def moved(self, path: str | None) -> str | None:
        """A checkpoint path under ``work_checkpoints`` as it will read once that is ``checkpoints``."""
        work = str(self.work_checkpoints)
        if path is None or self.work_checkpoints == self.checkpoints or not str(path).startswith(work + os.sep):
            return path
        return str(self.checkpoints) + str(path)[len(work):]

    def finish(self) -> None:
        """Swap the complete new run in for the old one; keep or remove its checkpoints (main process only)."""
        if self.replaces:
            (self.work / PARTIAL_MARK).unlink()
            _swap_in(self.work, self.out)
        if not self.keep_checkpoints:
            for directory in {self.work_checkpoints, self.checkpoints}:
                shutil.rmtree(directory, ignore_errors=True)
            return
        if self.work_checkpoints != self.checkpoints:
            for state_file in self.work_checkpoints.glob("checkpoint-*/trainer_state.json"):
                state = json.loads(state_file.read_text())  # the best checkpoint's path, for a later --resume
                state["best_model_checkpoint"] = self.moved(state.get("best_model_checkpoint"))
                state_file.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
                refresh_marker(state_file.parent, state_file.name)  # the checkpoint stays complete
            (self.work_checkpoints / PARTIAL_MARK).unlink()
            _swap_in(self.work_checkpoints, self.checkpoints)

    def abandon(self) -> None:
        """A run that did not complete: its partial replacements go, the old ones stay (main process only)."""
        for work, final in ((self.work, self.out), (self.work_checkpoints, self.checkpoints)):
            if work != final:
                shutil.rmtree(work, ignore_errors=True)


def _in_the_way(work: Path, final: Path) -> None:
    if work.exists() and not (work / PARTIAL_MARK).is_file():
        raise EliquareError(f"{work} is in the way: --overwrite builds the new run there before it replaces {final}; "
                            "move or remove it")


def check_output_dir(cfg: DistillConfig) -> RunDirectory:
    """Refuse to write over a user's directory unless asked; --resume continues in it, --overwrite builds beside it."""
    out = check_writable(cfg.out)
    checkpoints = checkpoint_dir(cfg)
    if checkpoints.resolve() == out.resolve() or out.resolve() in checkpoints.resolve().parents:
        raise EliquareError(f"--checkpoint-dir {checkpoints} is inside --out {out}, which holds only what is "
                            "published; give a directory beside it (the default is OUT.checkpoints)")
    check_writable(checkpoints, "--checkpoint-dir")
    keep = cfg.keep_checkpoints
    if cfg.resume:
        if not any(checkpoints.glob("checkpoint-*")):
            old = out / "checkpoints"  # where eliquare kept them before issue 15
            hint = (f" (this run's are in {old}, where an earlier eliquare kept them: move that directory to "
                    f"{checkpoints})") if any(old.glob("checkpoint-*")) else ""
            raise EliquareError(f"--resume: no checkpoint found in {checkpoints}{hint}; start without --resume")
        return RunDirectory(out, out, checkpoints, checkpoints, keep, resume=True)
    if checkpoints.is_dir():  # the run removes this directory when done: it must be eliquare's own
        foreign = sorted(p.name for p in checkpoints.iterdir()
                         if not p.name.startswith("checkpoint-") and p.name not in (RUN_SETTINGS, PARTIAL_MARK,
                                                                                   CACHE_DIR_NAME))
        if foreign:
            raise EliquareError(f"--checkpoint-dir {checkpoints} holds files that are not checkpoints "
                                f"({', '.join(foreign[:3])}); give a new or empty directory")
    has_checkpoints = any(checkpoints.glob("checkpoint-*"))
    if has_checkpoints and not cfg.overwrite:
        raise EliquareError(f"checkpoint directory {checkpoints} holds an earlier run's checkpoints; give --resume to "
                            "continue that run, or --overwrite to replace it")
    work_checkpoints = checkpoints
    if cfg.overwrite and has_checkpoints:
        work_checkpoints = checkpoints.parent / f"{checkpoints.name}.partial"
        _in_the_way(work_checkpoints, checkpoints)
    if out.exists() and any(out.iterdir()):
        if not cfg.overwrite:
            raise EliquareError(f"output directory {out} exists and is not empty; give --overwrite to replace it, "
                                "or --resume to continue its run")
        work = out.parent / f"{out.name}.partial"
        _in_the_way(work, out)
        check_writable(out.parent, "the directory of --out")  # the new run is made there, then renamed
        return RunDirectory(out, work, checkpoints, work_checkpoints, keep)
    return RunDirectory(out, out, checkpoints, work_checkpoints, keep)


RUN_SETTINGS = "run_settings.json"  # in OUT: what the run's checkpoints were made with, compared by --resume


def run_settings(cfg: DistillConfig) -> dict:
    """The settings a run's checkpoints depend on, known from the options (``derived_settings``: the others).

    A --resume with other values would die deep in torch (another vocabulary, other layers), or go on quietly
    with another run's weights (another corpus, teacher, loss or masking)."""
    from eliquare.fingerprint import files_fingerprint  # the corpus as experiment fingerprints it

    teacher = Path(cfg.teacher).expanduser()
    return {
        "teacher": str(teacher.resolve()) if teacher.is_dir() else cfg.teacher,
        "corpus": files_fingerprint(expand_paths(corpus_paths(cfg.corpus))),  # the files' names and bytes
        "corpus_options": asdict(cfg.corpus_options),
        **({"languages": {lang: files_fingerprint(expand_paths(paths)) for lang, paths in languages.items()},
            "language_weights": cfg.language_weights} if (languages := by_language(cfg.corpus)) else {}),
        "max_length": cfg.max_length,
        "validation_fraction": cfg.validation_fraction,
        "vocab_reduce": cfg.vocab_reduce,
        "vocab_selection": _vocab_selection(cfg) if cfg.vocab_reduce != "none" else None,
        "student_layers": cfg.student_layers,
        "layer_map": LAYER_MAP_ALIASES.get(cfg.layer_map, cfg.layer_map),
        "freeze_position_embeddings": cfg.freeze_position_embeddings,
        "loss": {**{k: getattr(cfg, k) for k in ("recipe", "alpha_ce", "alpha_cos", "temperature", "hidden_loss",
                                                 "hidden_layers", "head_warmup")},
                 "alpha_mlm": cfg.mlm_weight(cfg.objective) if cfg.objective != "auto" else cfg.alpha_mlm},
        "masking": {k: getattr(cfg, k) for k in ("mlm_probability", "mask_replace", "random_replace",
                                                 "mlm_smoothing")},
        **({"vocab_amp": [cfg.vocab_amp, cfg.vocab_amp_trained_size]} if cfg.vocab_amp else {}),
        **({"layerwise": {k: getattr(cfg, k) for k in ("alpha_hidden", "alpha_attn", "alpha_value")}}
           if cfg.alpha_hidden or cfg.alpha_attn or cfg.alpha_value else {}),  # absent when off, as before
        **({"embedding": {k: getattr(cfg, k) for k in ("objective", "alpha_sentence", "sentence_loss",
                                                       "alpha_contrastive", "contrastive_temperature", "prompts")}}
           if cfg.objective != "masked-lm" else {}),  # absent from the settings of masked-LM runs, as before
    }


def derived_settings(teacher, layers: list[int]) -> dict:
    """The settings of ``run_settings`` known once the teacher is loaded (and its vocabulary reduced)."""
    return {"vocabulary_size": len(teacher.tokenizer), "teacher_layers_used": [i + 1 for i in layers]}


_SETTING_NAMES = {"corpus": "corpus (the fingerprint of its files' names and bytes)",
                  "vocabulary_size": "vocabulary size", "teacher_layers_used": "teacher layers used"}


def check_resume_settings(checkpoints: Path, now: dict) -> None:
    """--resume: refuse checkpoints made with other settings, naming each one that differs."""
    path = checkpoints / RUN_SETTINGS
    if not path.is_file():
        return  # a run of an earlier eliquare: the checkpoint's own config is compared (check_checkpoint_shape)
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        raise EliquareError(f"--resume: {path} is not readable; restore it, or start afresh with --overwrite") \
            from None
    now = json.loads(json.dumps(now))  # as JSON holds it (tuples are lists)

    def short(value) -> str:
        text = json.dumps(value, sort_keys=True)
        return text if len(text) <= 60 else text[:57] + "..."

    differ = [f"{_SETTING_NAMES.get(k, k)} {short(recorded[k])} then, {short(v)} now" for k, v in now.items()
              if k in recorded and recorded[k] != v]
    if differ:
        raise EliquareError(f"--resume: the checkpoints in {checkpoints} were made with other settings: {'; '.join(differ)}; "
                            f"resume with the run's own settings (see {path}), or start afresh with --overwrite")


def check_checkpoint_shape(last: Path, student) -> None:
    """--resume: the checkpoint holds a model of the student's shape (what torch would otherwise fail on)."""
    try:
        saved = json.loads((Path(last) / "config.json").read_text(encoding="utf-8"))
    except (TypeError, OSError, ValueError):
        return  # nothing to compare with: the Trainer reports what it cannot load
    differ = [f"{k} {saved[k]} in the checkpoint, {getattr(student.config, k)} now"
              for k in ("vocab_size", "num_hidden_layers", "hidden_size")
              if k in saved and saved[k] != getattr(student.config, k, None)]
    if differ:
        raise EliquareError(f"--resume: {last} holds another model ({'; '.join(differ)}); resume with the run's own "
                            "settings (see its distillation.json), or start afresh with --overwrite")


def training_arguments(cfg: DistillConfig, checkpoints: Path) -> TrainingArguments:
    every = cfg.eval_steps or 10**9  # no step-based evaluation unless asked; epochs are handled by a callback
    cpu = cfg.use_cpu or not torch.cuda.is_available()
    return trainer_arguments(
        checkpoints, seed=cfg.seed, use_cpu=cfg.use_cpu, bf16=False,  # the trainer's own autocast (DistillationTrainer)
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation,
        learning_rate=PAPER_LEARNING_RATE,  # replaced by the recipe's once the teacher is loaded (see distill)
        adam_epsilon=cfg.adam_epsilon,
        weight_decay=cfg.weight_decay,
        warmup_steps=0,  # cfg.warmup_ratio of the steps, set once the corpus is known (see distill)
        max_grad_norm=cfg.max_grad_norm,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        save_strategy="steps",
        eval_steps=every,
        save_steps=every,
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=True,
        metric_for_best_model="loss",
        greater_is_better=False,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        dataloader_num_workers=cfg.dataloader_workers,
        train_sampling_strategy="group_by_length" if cfg.pack else "random",
        length_column_name="length",
        remove_unused_columns=False,
        label_names=["labels"],
        include_num_input_tokens_seen="non_padding",
        ddp_backend="gloo" if cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        disable_tqdm=False,
        eval_on_start=not cfg.resume,  # the validation loss before training, for the record
    )


def _vocab_selection(cfg: DistillConfig) -> dict:
    return dict(min_fraction=cfg.vocab_min_fraction, min_count=cfg.vocab_min_count, max_size=cfg.vocab_max_size)


def health_monitor(cfg: DistillConfig, teacher, student, data, log, tokenizer=None,
                   reference=None) -> HealthMonitor | None:
    """Teacher and initialisation measured once, on the first validation sentences (and the probe file).

    ``tokenizer`` and ``reference``: the student's vocabulary and the teacher in it (with --vocab-amp, the teacher
    with the amplified vocabulary, its new rows as initialised)."""
    if not cfg.health_sentences:
        return None
    tokenizer = tokenizer or teacher.tokenizer
    rows = data.validation.select(range(min(cfg.health_sentences, len(data.validation))))["input_ids"]
    sample = HealthSample.from_ids(rows, tokenizer.pad_token_id, tokenizer.all_special_ids)
    probe = ProbeSet.from_file(cfg.probe, tokenizer, cfg.probe_task, cfg.max_length) if cfg.probe else None
    monitor = HealthMonitor(reference if reference is not None else teacher.model, student, sample, probe)
    t, i = monitor.teacher, monitor.initial
    log(f"health: last-layer pairwise cosine teacher {t.last:.3f}, initialisation {i.last:.3f} (a student above "
        f"{max(t.last, i.last) + 0.1:.3f} is collapsing); initialisation CKA {i.cka:.3f}, neighbours {i.neighbours:.3f}"
        + (f", probe teacher {t.probe:.3f} initialisation {i.probe:.3f}" if probe else ""))
    return monitor


@dataclass
class Plan:
    """What a run will do, settled once the teacher and the corpus are known."""

    weights: LossWeights
    recipe: Recipe
    objective: Objective
    total_steps: int  # optimizer steps of the whole run (the Trainer's count)
    head_warmup_steps: int  # steps in which a fresh head's MLM gradient stays in the head

    @property
    def embedding(self):
        """The teacher's EmbeddingSpec for the embedding objective; None for the masked-LM objective."""
        return self.objective.embedding


def resolve_objective(cfg: DistillConfig, teacher, log):
    """The teacher's ``EmbeddingSpec`` when the run distils sentence embeddings (--objective embedding, or auto
    and the teacher has a sentence-transformers configuration), else None."""
    spec = teacher_embedding_spec(cfg.teacher, teacher)
    if cfg.objective == "masked-lm" or (cfg.objective == "auto" and spec is None):
        return None
    if spec is None:
        from eliquare.embedding import EmbeddingSpec

        spec = EmbeddingSpec(pooling="mean", normalize=True)
        log(f"notice: teacher {cfg.teacher} has no sentence-transformers configuration (modules.json); its sentence "
            "embedding is taken to be the mean of its last token states, L2-normalised, without prompts")
    log(f"objective embedding: {spec.pooling} pooling" + (f", {len(spec.dense)} dense layer(s)" if spec.dense else "")
        + (", L2-normalised" if spec.normalize else "")
        + (f"; text given the prompts {' / '.join(repr(p) for p in spec.distillation_prompts(cfg.prompts))} in turn"
           if any(spec.distillation_prompts(cfg.prompts)) else ""))
    return spec


def optimizer_steps(cfg: DistillConfig, train_sentences: int, world_size: int) -> int:
    """Optimizer steps of the run, counted as the Trainer counts them (a partial accumulation ends an epoch)."""
    if cfg.max_steps > 0:
        return cfg.max_steps
    batches = math.ceil(train_sentences / (cfg.batch_size * world_size))
    return math.ceil(max(math.ceil(batches / cfg.gradient_accumulation), 1) * cfg.epochs)


def plan_run(cfg: DistillConfig, teacher, layers: list[int], train_sentences: int, world_size: int, log,
             embedding=None, cross=None) -> Plan:
    weights = LossWeights(**cfg.loss_weights(teacher.has_mlm_head, "embedding" if embedding else "masked-lm"))
    if not teacher.has_mlm_head and cfg.alpha_ce is None and not embedding:
        log(f"notice: teacher {cfg.teacher} has no trained MLM head; the soft-target (CE) term is off and the "
            "student's new MLM head is trained by the MLM term (the paper's L_cos + L_mlm setting)")
    recipe = resolve_recipe(cfg, cfg.batch_size * cfg.gradient_accumulation * world_size,
                            fresh_head=not teacher.has_mlm_head)
    log(f"recipe {recipe.name}: hidden-state term {recipe.hidden_loss} on {recipe.hidden_layers} layers, "
        f"peak learning rate {recipe.learning_rate:.2e}"
        + (f"; the fresh MLM head trains alone (its gradient kept from the encoder) for {recipe.head_warmup:.0%} of "
           "the steps" if recipe.head_warmup and weights.mlm else ""))
    n_teacher_layers = teacher.model.config.num_hidden_layers
    objective = Objective(weights, cfg.temperature, centre=recipe.hidden_loss == "centred-cosine",
                          hidden_pairs=tuple(hidden_targets(layers, n_teacher_layers))
                          if recipe.hidden_layers == "mapped" else (),
                          embedding=embedding, sentence_loss=cfg.sentence_loss,
                          contrastive_temperature=cfg.contrastive_temperature,
                          layer_pairs=tuple((n - 1, end - 1) for n, end in hidden_targets(layers, n_teacher_layers)),
                          attention_heads=teacher.model.config.num_attention_heads, cross=cross)
    total = optimizer_steps(cfg, train_sentences, world_size)
    head_warmup = sys.maxsize if recipe.head_warmup >= 1 else round(recipe.head_warmup * total)
    return Plan(weights, recipe, objective, total, head_warmup)


def distill(cfg: DistillConfig, callbacks: list[TrainerCallback] | None = None) -> Path:
    """Run the whole distillation stage; returns the student directory.

    ``callbacks`` are extra ``transformers.TrainerCallback`` objects (logging to your tracker, say).
    """
    run = check_output_dir(cfg)
    resume_from = resume_point(run.checkpoints) if cfg.resume else None  # complete checkpoints only
    if cfg.push_to_hub:
        check_push(cfg.push_to_hub)
    expand_paths(corpus_paths(cfg.corpus))  # a missing corpus file is reported before anything slow starts
    check_layer_map(cfg.layer_map, cfg.student_layers)  # and a bad --layer-map (the teacher's depth: once loaded)
    languages = by_language(cfg.corpus)
    weights = parse_weights(cfg.language_weights, list(languages or ()))
    if cfg.probe and not Path(cfg.probe).is_file():
        raise EliquareError(f"--probe {cfg.probe} is not a file; give a POS or NER file (CoNLL-U, BIO)")
    settings = run_settings(cfg)
    if cfg.resume:
        check_resume_settings(run.checkpoints, settings)  # before anything slow: the options alone tell these apart
    args = training_arguments(cfg, run.work_checkpoints)
    is_main = args.process_index == 0

    def log(message: str) -> None:
        if is_main:
            print(message, file=sys.stderr, flush=True)

    for notice in resume_from.notices() if resume_from else ():
        log(notice)
    started = time.time()
    teacher = load_teacher(cfg.teacher)
    # the student is built from the teacher's layers and position embeddings: the teacher's limit is its limit too
    check_max_length(cfg.max_length, length_limit(teacher.model.config, teacher.tokenizer), f"teacher {cfg.teacher}")
    reduction = None
    if cfg.vocab_reduce == "pre":  # Section 5 before distillation: the student inherits the smaller vocabulary
        reduction = reduce_on_corpus(teacher.model, teacher.tokenizer, cfg.corpus, cfg.corpus_options,
                                     **_vocab_selection(cfg))
        teacher.tokenizer = reduction.tokenizer  # teacher.model was reduced in place
        if (notice := retokenisation_notice(reduction.report)) is not None:  # before the hours of distillation
            log(notice)
    embedding = resolve_objective(cfg, teacher, log)
    layers = select_layers(teacher.model.config.num_hidden_layers, cfg.student_layers, cfg.layer_map)
    amplification, cross, tokenizer, source = None, None, teacher.tokenizer, teacher.model
    if cfg.vocab_amp:  # VocabAmp: the student reads an amplified vocabulary, the teacher its own
        from eliquare.corpus import iter_sentences
        from eliquare.vocab.amp import CrossTokenisation, amplify_vocabulary

        amplification = amplify_vocabulary(copy.deepcopy(teacher.model), teacher.tokenizer,
                                           iter_sentences(corpus_paths(cfg.corpus), cfg.corpus_options),
                                           add=cfg.vocab_amp, trained_size=cfg.vocab_amp_trained_size, seed=cfg.seed)
        cross = CrossTokenisation.of(amplification, len(teacher.tokenizer),
                                     length_limit(teacher.model.config, teacher.tokenizer))
        tokenizer, source = amplification.tokenizer, amplification.model
    with args.main_process_first(desc="preparing the corpus"):
        prepare = dict(max_length=cfg.max_length, validation_fraction=cfg.validation_fraction,
                       cache_dir=cfg.cache_dir, log=log)
        data = prepare_languages(languages, tokenizer, cfg.corpus_options, weights=weights, seed=cfg.seed,
                                 **prepare) if languages else \
            prepare_corpus(cfg.corpus, tokenizer, cfg.corpus_options, **prepare)
    plan = plan_run(cfg, teacher, layers, len(data.train), args.world_size, log, embedding, cross)
    bf16 = resolve_bf16(cfg.bf16, cfg.use_cpu)
    use_cache = wants_teacher_cache(cfg, plan, len(data.train), args.world_size)
    train_set, validation_set = training_datasets(data, cfg.pack, rows=use_cache)
    log(f"precision: {'bf16 autocast (fp32 weights and losses)' if bf16 else 'fp32'}; batches: "
        + ("of sentences of similar length" if cfg.pack else "in random order, padded to their longest")
        + f"; teacher cache: {'on (the teacher reads each unmasked sentence once)' if use_cache else 'off'}")
    args.learning_rate = plan.recipe.learning_rate
    args.warmup_steps = math.ceil(cfg.warmup_ratio * plan.total_steps)
    # the student's fresh weights (an MLM head a headless teacher lacks) are drawn from --seed alone, not from whatever
    # the steps before drew: a corpus read from the cache instead of tokenised, or a run earlier in the same process,
    # gave the same settings another student
    set_seed(cfg.seed)
    student = build_student(source, layers, copy_head=teacher.has_mlm_head)
    if embedding is not None:  # the teacher's pooling (and dense layers), frozen for it, a trainable copy for the student
        from eliquare.embedding import SentencePooler

        teacher.model.sentence_pooler = SentencePooler(embedding)
        student.sentence_pooler = SentencePooler(embedding)
    if plan.weights.attn:  # attention probabilities come from the eager implementation only
        use_eager_attention(student)
        use_eager_attention(teacher.model)
    if cfg.freeze_position_embeddings:
        freeze_position_embeddings(student)
    settings.update(derived_settings(teacher, layers))
    if cfg.resume:
        check_resume_settings(run.checkpoints, settings)
        check_checkpoint_shape(resume_from.path, student)
    health = health_monitor(cfg, teacher, student, data, log, tokenizer, source)
    log(f"teacher: {cfg.teacher} ({count_parameters(teacher.model):,} parameters, "
        f"{teacher.model.config.num_hidden_layers} layers); student: {count_parameters(student):,} parameters, "
        f"layers {[i + 1 for i in layers]} of the teacher")
    trainer = distillation_trainer(cfg, args, teacher, student, data, plan, health, callbacks, tokenizer,
                                   datasets=(train_set, validation_set), bf16=bf16)
    with args.main_process_first(desc="making the run directory"):
        if is_main:  # every input has been checked: only now is anything written
            run.begin(settings)
            if resume_from:
                resume_from.remove_skipped()
    try:
        if use_cache:
            trainer.teacher_cache = teacher_cache(cfg, run, args, settings, teacher.model, data, bf16, log)
        train_result = trainer.train(resume_from_checkpoint=str(resume_from.path) if resume_from else None)
        reduction = save_student(cfg, run.work, trainer, teacher, student, reduction, is_main, log, plan.embedding,
                                 amplification)
        if is_main:
            record = run_record(cfg, teacher, student, layers, plan, data, trainer, train_result, reduction, health,
                                started)
            record["speed"] = {"bf16": bf16, "pack": cfg.pack, "padding_share": round(trainer.padding_share, 4),
                               "torch_threads": torch.get_num_threads(),
                               "teacher_cache": trainer.teacher_cache.meta if trainer.teacher_cache else None}
            record["best_checkpoint"] = run.moved(record["best_checkpoint"])
            record["inference"] = student_and_teacher(teacher.model, student, len(teacher.tokenizer))  # for the card
            write_json(run.work / "distillation.json", record, indent=2)  # by a temporary name: whole or absent
            finish_student_dir(run.work)  # model card, no pickles, 0644, a tokenizer transformers 4.x loads
    except BaseException:
        if is_main:
            run.abandon()
        raise
    if is_main:
        run.finish()
    log(f"student written to {run.out} (best validation distillation loss {trainer.state.best_metric:.4f})")
    if cfg.push_to_hub and is_main:
        push(run.out, cfg.push_to_hub, private=cfg.hub_private, log=log)
    return run.out


def save_student(cfg: DistillConfig, work: Path, trainer, teacher, student, reduction, is_main: bool, log,
                 embedding=None, amplification=None):
    """The best checkpoint's weights (load_best_model_at_end has put them back into the student) and the
    tokenizer, reduced after distillation with --vocab-reduce post; returns the vocabulary reduction (if any).

    An embedding student is saved as a sentence-transformers model: its encoder (no MLM head), the tokenizer, and
    the teacher's pooling, dense layers (trained) and normalisation with its prompts (``eliquare.embedding``)."""
    if embedding is None:
        trainer.save_model(str(work))
    if cfg.vocab_reduce == "post" and is_main:  # Section 5 after distillation: the student alone
        reduction = reduce_on_corpus(student, teacher.tokenizer, cfg.corpus, cfg.corpus_options,
                                     **_vocab_selection(cfg))
        if (notice := retokenisation_notice(reduction.report)) is not None:
            log(notice)
        if embedding is None:
            student.save_pretrained(work)
    if embedding is not None and is_main:
        from eliquare.embedding import save_sentence_transformers

        encoder = encoder_of(student)
        encoder.save_pretrained(work)
        if reduction is None:
            teacher.tokenizer.save_pretrained(str(work))
        save_sentence_transformers(work, embedding, encoder.config.hidden_size, pooler=student.sentence_pooler)
    if reduction is not None and is_main:
        if amplification is None:
            save_tokenizer(reduction.tokenizer, reduction.slow_files, work)
        log(format_report(reduction.report))
    if amplification is not None and is_main:  # the student's own, amplified vocabulary (trainer.save_model wrote it)
        for stale in ("sentencepiece.bpe.model", "vocab.txt"):  # a slow vocabulary file would lack the new pieces
            (work / stale).unlink(missing_ok=True)
        amplification.tokenizer.save_pretrained(str(work))
        (work / "vocab_amp_report.json").write_text(json.dumps(amplification.report, indent=1, ensure_ascii=False)
                                                    + "\n", encoding="utf-8")
    return reduction


def wants_teacher_cache(cfg: DistillConfig, plan: Plan, train_sentences: int, world_size: int) -> bool:
    """``--teacher-cache`` as given (refused, exit 2, where the objective needs more than last-layer states), or by
    default: on for a run of more than one pass whose teacher terms are last-layer states only (no CE term: the
    cached states are the unmasked sentence's, and soft targets at a position whose token the teacher sees are not
    the paper's)."""
    why_not = cache_unsupported(plan.objective)
    if cfg.teacher_cache:
        if why_not:
            raise EliquareError(f"--teacher-cache keeps the teacher's last-layer states only, which do not serve "
                                f"{why_not}; drop --teacher-cache")
        return True
    if cfg.teacher_cache is False or why_not or plan.weights.ce:
        return False
    batches = plan.total_steps * cfg.gradient_accumulation * world_size
    return batches * cfg.batch_size > 1.5 * train_sentences  # more than one pass: the cache pays for itself


def training_datasets(data, pack: bool, rows: bool):
    """The training and validation sets the Trainer reads: with ``rows``, each sentence's index (its place in the
    teacher cache); with ``pack``, the validation sentences sorted by length (training batches are grouped by the
    Trainer's length-grouped sampler), so that few positions are padding."""
    train, validation = data.train, data.validation
    if rows:
        train = train.add_column("row", list(range(len(train))))
        validation = validation.add_column("row", list(range(len(validation))))
    if pack and "length" in validation.column_names:
        validation = validation.sort("length")
    return train, validation


def teacher_cache(cfg: DistillConfig, run: RunDirectory, args: TrainingArguments, settings: dict, teacher, data,
                  bf16: bool, log) -> TeacherCache:
    """The run's teacher cache, in its checkpoint directory: opened if one made from the same inputs is there (a
    --resume), else computed (main process; the others wait and open it)."""
    directory = run.work_checkpoints / CACHE_DIR_NAME
    key = {"teacher": settings["teacher"], "corpus": data.fingerprint, "vocabulary_size": settings["vocabulary_size"],
           "teacher_layers": teacher.config.num_hidden_layers, "bf16": bf16}
    with args.main_process_first(desc="the teacher's states"):
        cache = TeacherCache.open(directory, key)
        if cache is None and args.process_index == 0:
            log(f"teacher cache: the teacher reads the {len(data.train) + len(data.validation):,} sentences once")
            cache = TeacherCache.build(directory, key, teacher, {"train": data.train, "validation": data.validation},
                                       bf16=bf16, log=log)
            corpus_mb = sum(p.stat().st_size for p in expand_paths(corpus_paths(cfg.corpus))) / 1e6
            cache.meta["corpus_megabytes"] = round(corpus_mb, 2)
            log(f"teacher cache: {cache.megabytes:,.0f} MB in {cache.meta['seconds']:.0f} s"
                + (f" ({cache.megabytes / corpus_mb:.0f} MB and {cache.meta['seconds'] / corpus_mb:.0f} s per MB of "
                   "corpus files)" if corpus_mb else ""))
        elif cache is not None:
            log(f"teacher cache: reusing {directory} ({cache.megabytes:,.0f} MB)")
    return cache if cache is not None else TeacherCache.open(directory, key)


def distillation_trainer(cfg: DistillConfig, args: TrainingArguments, teacher, student, data, plan: Plan,
                         health: HealthMonitor | None, callbacks, tokenizer=None, datasets=None,
                         bf16: bool = False) -> DistillationTrainer:
    tokenizer = tokenizer or teacher.tokenizer  # the student's (with --vocab-amp, not the teacher's)
    collator = collator_for(tokenizer, data.token_counts, mlm_probability=cfg.mlm_probability,
                            mask_replace=cfg.mask_replace, random_replace=cfg.random_replace,
                            smoothing=cfg.mlm_smoothing, seed=cfg.seed)
    if plan.embedding is not None:
        from eliquare.embedding import PromptCollator

        collator = PromptCollator.for_tokenizer(collator, tokenizer, plan.embedding, cfg.prompts,
                                                masked=bool(plan.weights.mlm or plan.weights.ce),
                                                max_length=length_limit(teacher.model.config, tokenizer))
    train_set, validation_set = datasets or (data.train, data.validation)
    trainer = DistillationTrainer(model=student, args=args, train_dataset=train_set, eval_dataset=validation_set,
                                  data_collator=collator, processing_class=tokenizer,
                                  teacher=teacher.model, objective=plan.objective,
                                  head_warmup_steps=plan.head_warmup_steps, health=health,
                                  stop_on_collapse=cfg.stop_on_collapse, bf16=bf16,
                                  callbacks=[EpochCheckpoints(), CompleteCheckpoints(), *(callbacks or [])])
    if cfg.max_minutes:
        trainer.add_callback(TimeBudget(cfg.max_minutes))
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(DistillProgress())
    return trainer


def run_record(cfg: DistillConfig, teacher, student, layers, plan: Plan, data, trainer, train_result, reduction,
               health, started: float) -> dict:
    """``distillation.json``: what was distilled from what, how, and how every evaluation went."""
    return {
        "eliquare_version": __version__,
        "teacher": cfg.teacher,
        "teacher_path": teacher.path,
        "teacher_has_mlm_head": teacher.has_mlm_head,
        "teacher_layers": teacher.model.config.num_hidden_layers,
        "teacher_parameters": count_parameters(teacher.model),
        "student_layers": len(layers),
        "student_parameters": count_parameters(encoder_of(student) if plan.embedding is not None else student),
        "layer_map": cfg.layer_map,
        "teacher_layers_used": [i + 1 for i in layers],  # 1-based, as in the paper
        "objective": "embedding" if plan.embedding is not None else "masked-lm",
        "embedding": plan.embedding.as_dict() if plan.embedding is not None else None,
        "loss_weights": {k: v for k, v in asdict(plan.weights).items()
                         if k in ("ce", "cos", "mlm") or v or (plan.embedding is not None and
                                                               k in ("sentence", "contrastive"))},
        "temperature": cfg.temperature,
        "recipe": plan.recipe.as_dict(),
        "data_fingerprint": data.fingerprint,
        "corpus": [str(p) for p in cfg.corpus],
        "corpus_stats": data.stats.as_dict(),
        "languages": data.languages,
        "vocab_amp": plan.objective.cross.report if plan.objective.cross is not None else None,
        "epochs": trainer.state.epoch,
        "steps": trainer.state.global_step,
        "validation": [dict(e) for e in trainer.state.log_history if "eval_loss" in e],
        "best_validation_loss": trainer.state.best_metric,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "tokens_seen": trainer.state.num_input_tokens_seen,
        "train_metrics": train_result.metrics,  # runtime, samples/s, tokens/s (non-padding) of this session
        "wall_seconds": round(time.time() - started, 1),
        "machine": machine(),
        "vocab_reduce": reduction.report if reduction is not None else None,
        "health": health.references() if health is not None else None,  # per evaluation: in "validation"
        "config": asdict(cfg),
    }
