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
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import ProgressCallback

from eliquare import __version__
from eliquare.atomic import write_json
from eliquare.checkpoints import CompleteCheckpoints, NoStepPastTheEnd, refresh_marker, resume_point
from eliquare.config import LAYER_MAP_ALIASES, DistillConfig
from eliquare.corpus import expand_paths, prepare_corpus
from eliquare.errors import EliquareError, check_writable
from eliquare.health import HealthMonitor, HealthSample, ProbeSet
from eliquare.losses import LossWeights, Objective, cosine_loss, mlm_loss, soft_target_loss
from eliquare.masking import IGNORE_INDEX, collator_for
from eliquare.recipe import PAPER_LEARNING_RATE, Recipe, resolve_recipe
from eliquare.models import count_parameters, masked_lm_logits, use_masked_lm_forward
from eliquare.student import (build_student, check_layer_map, freeze_position_embeddings, hidden_targets,
                              select_layers)
from eliquare.teachers import load_teacher
from eliquare.training import trainer_arguments
from eliquare.vocab import format_report, reduce_on_corpus, save_tokenizer


def distillation_losses(student, teacher, batch: dict, objective: Objective, *, head_only: bool = False,
                        stats: dict | None = None) -> dict:
    """The terms of Eq. 4 for one batch; terms with weight 0 are skipped (the teacher head too).

    With ``objective.hidden_pairs`` the hidden-state term is the mean over those (student, teacher) layer
    pairs; ``stats``, if given, gains the student's masked-token hits and counts."""
    weights, hidden_pairs, centre = objective.weights, objective.hidden_pairs, objective.centre
    labels = batch["labels"]
    masked = labels != IGNORE_INDEX
    out = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels,
                  head_only=head_only, all_layers=bool(hidden_pairs))  # models.masked_lm_logits
    parts: dict[str, torch.Tensor] = {}
    need_teacher_logits = weights.ce > 0
    with torch.inference_mode():
        t_out = masked_lm_logits(teacher, batch["input_ids"], batch["attention_mask"], labels,
                                 logits=need_teacher_logits, all_layers=bool(hidden_pairs))
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


class DistillationTrainer(NoStepPastTheEnd, Trainer):
    """Trainer whose loss is the distillation objective; the teacher rides along, frozen."""

    def __init__(self, *args, teacher, objective: Objective, head_warmup_steps: int = 0,
                 health: HealthMonitor | None = None, stop_on_collapse: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
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

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        head_only = model.training and self.state.global_step < self.head_warmup_steps
        parts = distillation_losses(model, self.teacher, inputs, self.objective, head_only=head_only)
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
            self._time_at_log, self._tokens_at_log, self._eval_seconds = now, tokens, 0.0
        super().log(logs, start_time)

    @torch.no_grad()
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict:
        """Validation distillation loss (and its terms); the masks are the same at every evaluation."""
        started = time.perf_counter()
        dataloader = self.get_eval_dataloader(eval_dataset)
        model = self.model
        was_training = model.training
        model.eval()
        names = ("loss", "ce", "cos", "mlm")
        sums = torch.zeros(len(names) + 3, dtype=torch.float64, device=self.args.device)
        with torch.random.fork_rng(devices=[]):  # evaluation must not move the training RNG
            for batch in dataloader:
                batch = self._prepare_inputs(batch)
                stats: dict = {}
                parts = distillation_losses(model, self.teacher, batch, self.objective, stats=stats)
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
                   if name == "loss" or (name == "cos" and self.weights.cos) or (name == "ce" and self.weights.ce)
                   or (name == "mlm" and self.weights.mlm)}
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


@dataclass
class RunDirectory:
    """Where a run writes (``work``) and where its student ends up (``out``).

    A new run or a ``--resume`` writes in OUT itself. ``--overwrite`` of a non-empty OUT builds the new result in
    the sibling ``OUT.partial`` (checkpoints included) and swaps it in only once it is complete: a run that fails
    leaves the old OUT as it was, and no file of the old run survives into the new one."""

    out: Path
    work: Path

    @property
    def replaces(self) -> bool:
        return self.work != self.out

    def begin(self, settings: dict) -> None:
        """Make ``work`` with the run's settings in it (main process only), once every input has been checked."""
        if self.replaces:
            shutil.rmtree(self.work, ignore_errors=True)  # an interrupted --overwrite's leftover (it has the mark)
            self.work.mkdir(parents=True)
            (self.work / PARTIAL_MARK).write_text(f"eliquare distill is building the replacement of {self.out} here; "
                                                  "it is swapped in when the run is complete\n")
        self.work.mkdir(parents=True, exist_ok=True)
        if not (self.work / RUN_SETTINGS).is_file():  # a --resume keeps the settings its checkpoints were made with
            tmp = self.work / f".{RUN_SETTINGS}.tmp"
            tmp.write_text(json.dumps({"eliquare_version": __version__, "settings": settings}, indent=1,
                                      ensure_ascii=False) + "\n", encoding="utf-8")
            tmp.replace(self.work / RUN_SETTINGS)

    def moved(self, path: str | None) -> str | None:
        """A path under ``work`` as it will read once ``work`` is ``out``."""
        if path is None or not self.replaces or not str(path).startswith(str(self.work) + os.sep):
            return path
        return str(self.out) + str(path)[len(str(self.work)):]

    def finish(self) -> None:
        """Swap the complete new run in for the old one (main process only)."""
        if not self.replaces:
            return
        for state_file in (self.work / "checkpoints").glob("checkpoint-*/trainer_state.json"):
            state = json.loads(state_file.read_text())  # the best checkpoint's path, for a later --resume
            state["best_model_checkpoint"] = self.moved(state.get("best_model_checkpoint"))
            state_file.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
            refresh_marker(state_file.parent, state_file.name)
        (self.work / PARTIAL_MARK).unlink()
        old = Path(tempfile.mkdtemp(prefix=f"{self.out.name}.replaced-", dir=self.out.parent))
        self.out.rename(old / self.out.name)
        try:
            self.work.rename(self.out)
        except OSError:
            (old / self.out.name).rename(self.out)  # the old run back in its place
            raise
        finally:
            shutil.rmtree(old)

    def abandon(self) -> None:
        """A run that did not complete: its partial replacement goes, the old OUT stays (main process only)."""
        if self.replaces:
            shutil.rmtree(self.work, ignore_errors=True)


def check_output_dir(cfg: DistillConfig) -> RunDirectory:
    """Refuse to write over a user's directory unless asked; --resume continues in it, --overwrite builds beside it."""
    out = check_writable(cfg.out)
    if cfg.resume:
        if not any((out / "checkpoints").glob("checkpoint-*")):
            raise EliquareError(f"--resume: no checkpoint found in {out / 'checkpoints'}; start without --resume")
        return RunDirectory(out, out)
    if out.exists() and any(out.iterdir()):
        if not cfg.overwrite:
            raise EliquareError(f"output directory {out} exists and is not empty; give --overwrite to replace it, "
                                "or --resume to continue its run")
        work = out.parent / f"{out.name}.partial"
        if work.exists() and not (work / PARTIAL_MARK).is_file():
            raise EliquareError(f"{work} is in the way: --overwrite builds the new run there before it replaces {out}; "
                                "move or remove it")
        check_writable(out.parent, "the directory of --out")  # the new run is made there, then renamed
        return RunDirectory(out, work)
    return RunDirectory(out, out)


RUN_SETTINGS = "run_settings.json"  # in OUT: what the run's checkpoints were made with, compared by --resume


def run_settings(cfg: DistillConfig) -> dict:
    """The settings a run's checkpoints depend on, known from the options (``derived_settings``: the others).

    A --resume with other values would die deep in torch (another vocabulary, other layers), or go on quietly
    with another run's weights (another corpus, teacher, loss or masking)."""
    from eliquare.fingerprint import files_fingerprint  # the corpus as experiment fingerprints it

    teacher = Path(cfg.teacher).expanduser()
    return {
        "teacher": str(teacher.resolve()) if teacher.is_dir() else cfg.teacher,
        "corpus": files_fingerprint(expand_paths(cfg.corpus)),  # the files' names and bytes
        "corpus_options": asdict(cfg.corpus_options),
        "max_length": cfg.max_length,
        "validation_fraction": cfg.validation_fraction,
        "vocab_reduce": cfg.vocab_reduce,
        "vocab_selection": _vocab_selection(cfg) if cfg.vocab_reduce != "none" else None,
        "student_layers": cfg.student_layers,
        "layer_map": LAYER_MAP_ALIASES.get(cfg.layer_map, cfg.layer_map),
        "freeze_position_embeddings": cfg.freeze_position_embeddings,
        "loss": {k: getattr(cfg, k) for k in ("recipe", "alpha_ce", "alpha_cos", "alpha_mlm", "temperature",
                                              "hidden_loss", "hidden_layers", "head_warmup")},
        "masking": {k: getattr(cfg, k) for k in ("mlm_probability", "mask_replace", "random_replace",
                                                 "mlm_smoothing")},
    }


def derived_settings(teacher, layers: list[int]) -> dict:
    """The settings of ``run_settings`` known once the teacher is loaded (and its vocabulary reduced)."""
    return {"vocabulary_size": len(teacher.tokenizer), "teacher_layers_used": [i + 1 for i in layers]}


_SETTING_NAMES = {"corpus": "corpus (the fingerprint of its files' names and bytes)",
                  "vocabulary_size": "vocabulary size", "teacher_layers_used": "teacher layers used"}


def check_resume_settings(out: Path, now: dict) -> None:
    """--resume: refuse checkpoints made with other settings, naming each one that differs."""
    path = out / RUN_SETTINGS
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
        raise EliquareError(f"--resume: the checkpoints in {out} were made with other settings: {'; '.join(differ)}; "
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


def training_arguments(cfg: DistillConfig, out: Path) -> TrainingArguments:
    every = cfg.eval_steps or 10**9  # no step-based evaluation unless asked; epochs are handled by a callback
    cpu = cfg.use_cpu or not torch.cuda.is_available()
    return trainer_arguments(
        out / "checkpoints", seed=cfg.seed, use_cpu=cfg.use_cpu, bf16=cfg.bf16,
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
        train_sampling_strategy="group_by_length",
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


def health_monitor(cfg: DistillConfig, teacher, student, data, log) -> HealthMonitor | None:
    """Teacher and initialisation measured once, on the first validation sentences (and the probe file)."""
    if not cfg.health_sentences:
        return None
    tokenizer = teacher.tokenizer
    rows = data.validation.select(range(min(cfg.health_sentences, len(data.validation))))["input_ids"]
    sample = HealthSample.from_ids(rows, tokenizer.pad_token_id, tokenizer.all_special_ids)
    probe = ProbeSet.from_file(cfg.probe, tokenizer, cfg.probe_task, cfg.max_length) if cfg.probe else None
    monitor = HealthMonitor(teacher.model, student, sample, probe)
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


def optimizer_steps(cfg: DistillConfig, train_sentences: int, world_size: int) -> int:
    """Optimizer steps of the run, counted as the Trainer counts them (a partial accumulation ends an epoch)."""
    if cfg.max_steps > 0:
        return cfg.max_steps
    batches = math.ceil(train_sentences / (cfg.batch_size * world_size))
    return math.ceil(max(math.ceil(batches / cfg.gradient_accumulation), 1) * cfg.epochs)


def plan_run(cfg: DistillConfig, teacher, layers: list[int], train_sentences: int, world_size: int, log) -> Plan:
    weights = LossWeights(**cfg.loss_weights(teacher.has_mlm_head))
    if not teacher.has_mlm_head and cfg.alpha_ce is None:
        log(f"notice: teacher {cfg.teacher} has no trained MLM head; the soft-target (CE) term is off and the "
            "student's new MLM head is trained by the MLM term (the paper's L_cos + L_mlm setting)")
    recipe = resolve_recipe(cfg, cfg.batch_size * cfg.gradient_accumulation * world_size,
                            fresh_head=not teacher.has_mlm_head)
    log(f"recipe {recipe.name}: hidden-state term {recipe.hidden_loss} on {recipe.hidden_layers} layers, "
        f"peak learning rate {recipe.learning_rate:.2e}"
        + (f"; the fresh MLM head trains alone (its gradient kept from the encoder) for {recipe.head_warmup:.0%} of "
           "the steps" if recipe.head_warmup else ""))
    n_teacher_layers = teacher.model.config.num_hidden_layers
    objective = Objective(weights, cfg.temperature, centre=recipe.hidden_loss == "centred-cosine",
                          hidden_pairs=tuple(hidden_targets(layers, n_teacher_layers))
                          if recipe.hidden_layers == "mapped" else ())
    total = optimizer_steps(cfg, train_sentences, world_size)
    head_warmup = sys.maxsize if recipe.head_warmup >= 1 else round(recipe.head_warmup * total)
    return Plan(weights, recipe, objective, total, head_warmup)


def distill(cfg: DistillConfig, callbacks: list[TrainerCallback] | None = None) -> Path:
    """Run the whole distillation stage; returns the student directory.

    ``callbacks`` are extra ``transformers.TrainerCallback`` objects (logging to your tracker, say).
    """
    run = check_output_dir(cfg)
    resume_from = resume_point(run.out / "checkpoints") if cfg.resume else None  # complete checkpoints only
    expand_paths(cfg.corpus)  # a missing corpus file is reported before anything slow starts
    check_layer_map(cfg.layer_map, cfg.student_layers)  # and a bad --layer-map (the teacher's depth: once loaded)
    if cfg.probe and not Path(cfg.probe).is_file():
        raise EliquareError(f"--probe {cfg.probe} is not a file; give a POS or NER file (CoNLL-U, BIO)")
    settings = run_settings(cfg)
    if cfg.resume:
        check_resume_settings(run.out, settings)  # before anything slow: the options alone tell these apart
    args = training_arguments(cfg, run.work)
    is_main = args.process_index == 0

    def log(message: str) -> None:
        if is_main:
            print(message, file=sys.stderr, flush=True)

    for notice in resume_from.notices() if resume_from else ():
        log(notice)
    started = time.time()
    teacher = load_teacher(cfg.teacher)
    reduction = None
    if cfg.vocab_reduce == "pre":  # Section 5 before distillation: the student inherits the smaller vocabulary
        reduction = reduce_on_corpus(teacher.model, teacher.tokenizer, cfg.corpus, cfg.corpus_options,
                                     **_vocab_selection(cfg))
        teacher.tokenizer = reduction.tokenizer  # teacher.model was reduced in place
    layers = select_layers(teacher.model.config.num_hidden_layers, cfg.student_layers, cfg.layer_map)
    with args.main_process_first(desc="preparing the corpus"):
        data = prepare_corpus(cfg.corpus, teacher.tokenizer, cfg.corpus_options, max_length=cfg.max_length,
                              validation_fraction=cfg.validation_fraction, cache_dir=cfg.cache_dir, log=log)
    plan = plan_run(cfg, teacher, layers, len(data.train), args.world_size, log)
    args.learning_rate = plan.recipe.learning_rate
    args.warmup_steps = math.ceil(cfg.warmup_ratio * plan.total_steps)
    student = build_student(teacher.model, layers, copy_head=teacher.has_mlm_head)
    if cfg.freeze_position_embeddings:
        freeze_position_embeddings(student)
    settings.update(derived_settings(teacher, layers))
    if cfg.resume:
        check_resume_settings(run.out, settings)
        check_checkpoint_shape(resume_from.path, student)
    health = health_monitor(cfg, teacher, student, data, log)
    log(f"teacher: {cfg.teacher} ({count_parameters(teacher.model):,} parameters, "
        f"{teacher.model.config.num_hidden_layers} layers); student: {count_parameters(student):,} parameters, "
        f"layers {[i + 1 for i in layers]} of the teacher")
    trainer = distillation_trainer(cfg, args, teacher, student, data, plan, health, callbacks)
    with args.main_process_first(desc="making the run directory"):
        if is_main:  # every input has been checked: only now is anything written
            run.begin(settings)
            if resume_from:
                resume_from.remove_skipped()
    try:
        train_result = trainer.train(resume_from_checkpoint=str(resume_from.path) if resume_from else None)
        reduction = save_student(cfg, run.work, trainer, teacher, student, reduction, is_main, log)
        if is_main:
            record = run_record(cfg, teacher, student, layers, plan, data, trainer, train_result, reduction, health,
                                started)
            record["best_checkpoint"] = run.moved(record["best_checkpoint"])
            write_json(run.work / "distillation.json", record, indent=2)  # last: OUT is complete
    except BaseException:
        if is_main:
            run.abandon()
        raise
    if is_main:
        run.finish()
    log(f"student written to {run.out} (best validation distillation loss {trainer.state.best_metric:.4f})")
    return run.out


def save_student(cfg: DistillConfig, work: Path, trainer, teacher, student, reduction, is_main: bool, log):
    """The best checkpoint's weights (load_best_model_at_end has put them back into the student) and the
    tokenizer, reduced after distillation with --vocab-reduce post; returns the vocabulary reduction (if any)."""
    trainer.save_model(str(work))
    if cfg.vocab_reduce == "post" and is_main:  # Section 5 after distillation: the student alone
        reduction = reduce_on_corpus(student, teacher.tokenizer, cfg.corpus, cfg.corpus_options,
                                     **_vocab_selection(cfg))
        student.save_pretrained(work)
    if reduction is not None and is_main:
        save_tokenizer(reduction.tokenizer, reduction.slow_files, work)
        log(format_report(reduction.report))
    return reduction


def distillation_trainer(cfg: DistillConfig, args: TrainingArguments, teacher, student, data, plan: Plan,
                         health: HealthMonitor | None, callbacks) -> DistillationTrainer:
    collator = collator_for(teacher.tokenizer, data.token_counts, mlm_probability=cfg.mlm_probability,
                            mask_replace=cfg.mask_replace, random_replace=cfg.random_replace,
                            smoothing=cfg.mlm_smoothing, seed=cfg.seed)
    trainer = DistillationTrainer(model=student, args=args, train_dataset=data.train, eval_dataset=data.validation,
                                  data_collator=collator, processing_class=teacher.tokenizer,
                                  teacher=teacher.model, objective=plan.objective,
                                  head_warmup_steps=plan.head_warmup_steps, health=health,
                                  stop_on_collapse=cfg.stop_on_collapse,
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
        "student_parameters": count_parameters(student),
        "layer_map": cfg.layer_map,
        "teacher_layers_used": [i + 1 for i in layers],  # 1-based, as in the paper
        "loss_weights": asdict(plan.weights),
        "temperature": cfg.temperature,
        "recipe": plan.recipe.as_dict(),
        "data_fingerprint": data.fingerprint,
        "corpus": [str(p) for p in cfg.corpus],
        "corpus_stats": data.stats.as_dict(),
        "epochs": trainer.state.epoch,
        "steps": trainer.state.global_step,
        "validation": [dict(e) for e in trainer.state.log_history if "eval_loss" in e],
        "best_validation_loss": trainer.state.best_metric,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "tokens_seen": trainer.state.num_input_tokens_seen,
        "train_metrics": train_result.metrics,  # runtime, samples/s, tokens/s (non-padding) of this session
        "wall_seconds": round(time.time() - started, 1),
        "vocab_reduce": reduction.report if reduction is not None else None,
        "health": health.references() if health is not None else None,  # per evaluation: in "validation"
        "config": asdict(cfg),
    }
