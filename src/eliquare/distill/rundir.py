"""The run directory and resume: where a run writes, what it refuses to overwrite, how ``--overwrite`` builds a
replacement beside OUT and swaps it in, and the settings a ``--resume`` must match."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from eliquare import __version__
from eliquare.atomic import PARTIAL_MARK, swap_in
from eliquare.config import LAYER_MAP_ALIASES, DistillConfig, vocab_selection
from eliquare.corpus import expand_paths
from eliquare.corpus.languages import (
    by_language,
    corpus_paths,
)
from eliquare.distill.checkpoints import (
    refresh_marker,
)
from eliquare.distill.teacher_cache import (
    CACHE_DIR_NAME,
)
from eliquare.errors import EliquareError, check_writable


def checkpoint_dir(cfg: DistillConfig) -> Path:
    """Where the run's checkpoints live: ``--checkpoint-dir``, or ``OUT.checkpoints`` beside OUT (never inside it:
    OUT holds only what a user publishes, and checkpoints are pickles of optimizer state)."""
    out = Path(cfg.out).expanduser()
    return Path(cfg.checkpoint_dir).expanduser() if cfg.checkpoint_dir else out.parent / f"{out.name}.checkpoints"


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
                (work / PARTIAL_MARK).write_text(
                    f"eliquare distill is building the replacement of {final} here; "
                    "it is swapped in when the run is complete\n"
                )
            work.mkdir(parents=True, exist_ok=True)
        if not self.resume or not (self.work_checkpoints / RUN_SETTINGS).is_file():  # a --resume keeps its own
            tmp = self.work_checkpoints / f".{RUN_SETTINGS}.tmp"
            tmp.write_text(
                json.dumps({"eliquare_version": __version__, "settings": settings}, indent=1, ensure_ascii=False)
                + "\n",
                encoding="utf-8",
            )
            tmp.replace(self.work_checkpoints / RUN_SETTINGS)

    def moved(self, path: str | None) -> str | None:
        """A checkpoint path under ``work_checkpoints`` as it will read once that is ``checkpoints``."""
        work = str(self.work_checkpoints)
        if path is None or self.work_checkpoints == self.checkpoints or not str(path).startswith(work + os.sep):
            return path
        return str(self.checkpoints) + str(path)[len(work) :]

    def finish(self) -> None:
        """Swap the complete new run in for the old one; keep or remove its checkpoints (main process only)."""
        if self.replaces:
            (self.work / PARTIAL_MARK).unlink()
            swap_in(self.work, self.out)
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
            swap_in(self.work_checkpoints, self.checkpoints)

    def abandon(self) -> None:
        """A run that did not complete: its partial replacements go, the old ones stay (main process only)."""
        for work, final in ((self.work, self.out), (self.work_checkpoints, self.checkpoints)):
            if work != final:
                shutil.rmtree(work, ignore_errors=True)


def _in_the_way(work: Path, final: Path) -> None:
    if work.exists() and not (work / PARTIAL_MARK).is_file():
        raise EliquareError(
            f"{work} is in the way: --overwrite builds the new run there before it replaces {final}; move or remove it"
        )


def check_output_dir(cfg: DistillConfig) -> RunDirectory:
    """Refuse to write over a user's directory unless asked; --resume continues in it, --overwrite builds beside it."""
    out = check_writable(cfg.out)
    checkpoints = checkpoint_dir(cfg)
    if checkpoints.resolve() == out.resolve() or out.resolve() in checkpoints.resolve().parents:
        raise EliquareError(
            f"--checkpoint-dir {checkpoints} is inside --out {out}, which holds only what is "
            "published; give a directory beside it (the default is OUT.checkpoints)"
        )
    check_writable(checkpoints, "--checkpoint-dir")
    keep = cfg.keep_checkpoints
    if cfg.resume:
        if not any(checkpoints.glob("checkpoint-*")):
            old = out / "checkpoints"  # where eliquare 0.1 kept them, inside OUT
            hint = (
                (
                    f" (this run's are in {old}, where an earlier eliquare kept them: move that directory to "
                    f"{checkpoints})"
                )
                if any(old.glob("checkpoint-*"))
                else ""
            )
            raise EliquareError(f"--resume: no checkpoint found in {checkpoints}{hint}; start without --resume")
        return RunDirectory(out, out, checkpoints, checkpoints, keep, resume=True)
    if checkpoints.is_dir():  # the run removes this directory when done: it must be eliquare's own
        foreign = sorted(
            p.name
            for p in checkpoints.iterdir()
            if not p.name.startswith("checkpoint-") and p.name not in (RUN_SETTINGS, PARTIAL_MARK, CACHE_DIR_NAME)
        )
        if foreign:
            raise EliquareError(
                f"--checkpoint-dir {checkpoints} holds files that are not checkpoints "
                f"({', '.join(foreign[:3])}); give a new or empty directory"
            )
    has_checkpoints = any(checkpoints.glob("checkpoint-*"))
    if has_checkpoints and not cfg.overwrite:
        raise EliquareError(
            f"checkpoint directory {checkpoints} holds an earlier run's checkpoints; give --resume to "
            "continue that run, or --overwrite to replace it"
        )
    work_checkpoints = checkpoints
    if cfg.overwrite and has_checkpoints:
        work_checkpoints = checkpoints.parent / f"{checkpoints.name}.partial"
        _in_the_way(work_checkpoints, checkpoints)
    if out.exists() and any(out.iterdir()):
        if not cfg.overwrite:
            raise EliquareError(
                f"output directory {out} exists and is not empty; give --overwrite to replace it, "
                "or --resume to continue its run"
            )
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
    teacher = Path(cfg.teacher).expanduser()
    return {
        "teacher": str(teacher.resolve()) if teacher.is_dir() else cfg.teacher,
        **_corpus_settings(cfg),
        "max_length": cfg.max_length,
        "validation_fraction": cfg.validation_fraction,
        "vocab_reduce": cfg.vocab_reduce,
        "vocab_selection": _vocab_selection(cfg) if cfg.vocab_reduce != "none" else None,
        "student_layers": cfg.student_layers,
        "layer_map": LAYER_MAP_ALIASES.get(cfg.layer_map, cfg.layer_map),
        "freeze_position_embeddings": cfg.freeze_position_embeddings,
        "loss": _loss_settings(cfg),
        "masking": {k: getattr(cfg, k) for k in ("mlm_probability", "mask_replace", "random_replace", "mlm_smoothing")},
        **_optional_term_settings(cfg),
    }


def _corpus_settings(cfg: DistillConfig) -> dict:
    """The corpus as its files' names and bytes, its options and, for a corpus of several languages, each
    language's files and the weights they are mixed with."""
    from eliquare.fingerprint import (
        files_fingerprint,  # the corpus as experiment fingerprints it
    )

    settings: dict = {
        "corpus": files_fingerprint(expand_paths(corpus_paths(cfg.corpus))),
        "corpus_options": asdict(cfg.corpus_options),
    }
    if languages := by_language(cfg.corpus):
        settings["languages"] = {lang: files_fingerprint(expand_paths(paths)) for lang, paths in languages.items()}
        settings["language_weights"] = cfg.language_weights
    return settings


def _loss_settings(cfg: DistillConfig) -> dict:
    """The loss's recipe, weights, temperature and hidden-state terms; the MLM weight as the objective sets it."""
    names = ("recipe", "alpha_ce", "alpha_cos", "temperature", "hidden_loss", "hidden_layers", "head_warmup")
    return {
        **{k: getattr(cfg, k) for k in names},
        "alpha_mlm": cfg.mlm_weight(cfg.objective) if cfg.objective != "auto" else cfg.alpha_mlm,
    }


def _optional_term_settings(cfg: DistillConfig) -> dict:
    """VocabAmp, the layer-wise and relation terms and the embedding objective, each present only when in use,
    so that the settings of runs without these terms compare equal whatever their unused options say."""
    settings: dict = {}
    if cfg.vocab_amp:
        settings["vocab_amp"] = [cfg.vocab_amp, cfg.vocab_amp_trained_size]
    if cfg.alpha_hidden or cfg.alpha_attn or cfg.alpha_value:
        settings["layerwise"] = {k: getattr(cfg, k) for k in ("alpha_hidden", "alpha_attn", "alpha_value")}
    if cfg.relation_weight():
        settings["relation"] = {"alpha_relation": cfg.relation_weight(), "relation_heads": cfg.relation_heads}
    if cfg.objective != "masked-lm":
        embedding = ("objective", "alpha_sentence", "sentence_loss", "alpha_contrastive", "contrastive_temperature")
        settings["embedding"] = {k: getattr(cfg, k) for k in (*embedding, "prompts")}
    return settings


def derived_settings(teacher, layers: list[int]) -> dict:
    """The settings of ``run_settings`` known once the teacher is loaded (and its vocabulary reduced)."""
    return {"vocabulary_size": len(teacher.tokenizer), "teacher_layers_used": [i + 1 for i in layers]}


_SETTING_NAMES = {
    "corpus": "corpus (the fingerprint of its files' names and bytes)",
    "vocabulary_size": "vocabulary size",
    "teacher_layers_used": "teacher layers used",
}


def check_resume_settings(checkpoints: Path, now: dict) -> None:
    """--resume: refuse checkpoints made with other settings, naming each one that differs."""
    path = checkpoints / RUN_SETTINGS
    if not path.is_file():
        return  # a run of an earlier eliquare: the checkpoint's own config is compared (check_checkpoint_shape)
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        raise EliquareError(f"--resume: {path} is not readable; restore it, or start afresh with --overwrite") from None
    now = json.loads(json.dumps(now))  # as JSON holds it (tuples are lists)

    def short(value) -> str:
        text = json.dumps(value, sort_keys=True)
        return text if len(text) <= 60 else text[:57] + "..."

    differ = [
        f"{_SETTING_NAMES.get(k, k)} {short(recorded[k])} then, {short(v)} now"
        for k, v in now.items()
        if k in recorded and recorded[k] != v
    ]
    if differ:
        raise EliquareError(
            f"--resume: the checkpoints in {checkpoints} were made with other settings: {'; '.join(differ)}; "
            f"resume with the run's own settings (see {path}), or start afresh with --overwrite"
        )


def check_checkpoint_shape(last: Path, student) -> None:
    """--resume: the checkpoint holds a model of the student's shape (what torch would otherwise fail on)."""
    try:
        saved = json.loads((Path(last) / "config.json").read_text(encoding="utf-8"))
    except (TypeError, OSError, ValueError):
        return  # nothing to compare with: the Trainer reports what it cannot load
    differ = [
        f"{k} {saved[k]} in the checkpoint, {getattr(student.config, k)} now"
        for k in ("vocab_size", "num_hidden_layers", "hidden_size")
        if k in saved and saved[k] != getattr(student.config, k, None)
    ]
    if differ:
        raise EliquareError(
            f"--resume: {last} holds another model ({'; '.join(differ)}); resume with the run's own "
            "settings (see its distillation.json), or start afresh with --overwrite"
        )


def _vocab_selection(cfg: DistillConfig) -> dict:
    return vocab_selection(cfg.vocab_min_fraction, cfg.vocab_min_count, cfg.vocab_max_size, cfg.vocab_coverage)
