"""The ``students:`` section of an experiment file and its distil stage: each student and language read into a
checked ``DistillConfig`` (``read_students``), the fingerprint of what makes the student (its options, its corpus's
bytes, its teacher), and ``distil``, which finds a student done already with the same settings, adopts one distilled
by hand with exactly these options, resumes an interrupted one from its last checkpoint, or distils it."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from eliquare.config import (
    DistillConfig,
    ExperimentConfig,
    build_config,
    to_dict,
    upgrade_distill_record,
)
from eliquare.errors import EliquareError

PENDING = "fingerprint.pending.json"  # the fingerprint of a distillation under way, for resuming it
# options that change where or how a distillation runs, not the student it makes
NOT_IN_FINGERPRINT = {
    "out",
    "overwrite",
    "resume",
    "cache_dir",
    "logging_steps",
    "dataloader_workers",
    "checkpoint_dir",
    "keep_checkpoints",
    "push_to_hub",
    "hub_private",
    "language",
    "datasets",
}


@dataclasses.dataclass
class Student:
    name: str
    language: str
    config: DistillConfig

    @property
    def languages(self) -> list[str]:
        """The languages whose tasks the student is fine-tuned on: ``sw``, or ``sw+sl`` for a student of two."""
        return self.language.split("+")

    @property
    def key(self) -> str:
        return f"{self.name}/{self.language}"


def read_students(raw: dict, out: Path, cfg: ExperimentConfig, where: str) -> list[Student]:
    """The ``students:`` section as one checked ``DistillConfig`` per student and language."""
    section = raw.get("students") or {}
    if not isinstance(section, dict):
        raise EliquareError(f"{where}: students: must map a name to options: and languages:")
    students = []
    for name, entry in section.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("languages"), dict) or not entry["languages"]:
            raise EliquareError(
                f"{where}, students.{name}: give languages: (language: {{corpus: ...}}) and, optionally, options:"
            )
        unknown = sorted(set(entry) - {"options", "languages"})
        if unknown:
            raise EliquareError(
                f"{where}, students.{name}: unknown key(s) {', '.join(unknown)}; use options, languages"
            )
        claimed: dict[str, str] = {}
        for language in entry["languages"]:
            for part in str(language).split("+"):
                if not part or part in claimed:
                    raise EliquareError(
                        f"{where}, students.{name}.languages: {language!r} "
                        + (
                            f"repeats language {part!r} of {claimed[part]!r}; give each its own student name"
                            if part
                            else "has an empty language; write sw, or sw+sl for a student of two"
                        )
                    )
                claimed[part] = str(language)
        for language, own in entry["languages"].items():
            if not isinstance(own, dict) or not own.get("corpus"):
                raise EliquareError(f"{where}, students.{name}.languages.{language}: give corpus:")
            run: dict[str, Any] = {"out": str(out / "students" / str(name) / str(language))}
            if cfg.use_cpu:
                run["use_cpu"] = True
            if cfg.bf16 is not None:
                run["bf16"] = cfg.bf16
            config = build_config(
                DistillConfig,
                (f"{where}, students.{name}.options", entry.get("options") or {}),
                (f"{where}, students.{name}.languages.{language}", own),
                ("experiment", run),
            )
            students.append(Student(str(name), str(language), config))
    return students


def student_fingerprint(student: Student) -> dict:
    from eliquare.corpus import expand_paths
    from eliquare.fingerprint import files_fingerprint, model_fingerprint, stage_fingerprint

    options = {k: v for k, v in to_dict(student.config).items() if k not in NOT_IN_FINGERPRINT}
    from eliquare.corpus.languages import corpus_paths

    return stage_fingerprint(
        distill=options,
        corpus=files_fingerprint(expand_paths(corpus_paths(student.config.corpus))),
        teacher=model_fingerprint(student.config.teacher),
    )


def _same_options(record: dict, config: DistillConfig) -> bool:
    """A student distilled by hand counts as this one when it was made with exactly these options."""
    from eliquare import __version__

    def options(d: dict) -> dict:
        return {k: v for k, v in d.items() if k not in NOT_IN_FINGERPRINT}

    recorded = upgrade_distill_record(record.get("config") or {})
    return record.get("eliquare_version") == __version__ and options(recorded) == options(to_dict(config))


def _pending_marker(path: Path, fingerprint: dict):
    """A TrainerCallback writing the fingerprint of the distillation under way into OUT as its training begins."""
    from transformers import TrainerCallback

    class MarkPending(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(fingerprint) + "\n", encoding="utf-8")

    return MarkPending()


def distil(student: Student, dry_run: bool) -> tuple[str, float]:
    """``(what happened, seconds)`` for one student: done already, adopted, resumed, or distilled."""
    from eliquare.distill import distill
    from eliquare.distill.checkpoints import has_complete_checkpoint
    from eliquare.distill.rundir import checkpoint_dir
    from eliquare.fingerprint import record

    out = Path(student.config.out)
    fingerprint = student_fingerprint(student)
    if (done := _done_already(student, fingerprint, dry_run)) is not None:
        return done, 0.0
    pending = out / PENDING
    try:
        resumable = (
            pending.is_file()
            and has_complete_checkpoint(checkpoint_dir(student.config))
            and json.loads(pending.read_text(encoding="utf-8")).get("fingerprint") == fingerprint["fingerprint"]
        )
    except (OSError, ValueError, AttributeError):
        resumable = False  # an unreadable record of the run under way: start again
    what = (
        "resumed from its last checkpoint"
        if resumable
        else ("distilled again (settings changed)" if out.exists() else "distilled")
    )
    if dry_run:
        return f"to run: {what.replace('distilled', 'distil').replace('resumed', 'resume')}", 0.0
    config = dataclasses.replace(student.config, resume=resumable, overwrite=False)
    if not resumable:
        shutil.rmtree(out, ignore_errors=True)  # made by this experiment with other settings (or interrupted)
        shutil.rmtree(checkpoint_dir(student.config), ignore_errors=True)
    started = time.perf_counter()
    # the run writes in OUT itself (an --overwrite run would build beside it): its checkpoints are where a resume
    # looks, beside the fingerprint they were made with
    distill(config, callbacks=[_pending_marker(pending, fingerprint)])
    record(out, fingerprint)
    pending.unlink(missing_ok=True)
    return what, time.perf_counter() - started


def _done_already(student: Student, fingerprint: dict, dry_run: bool) -> str | None:
    """What to say of a student found done: with the same settings, or distilled by hand with exactly these
    options (adopted); None when it is to be made."""
    from eliquare.fingerprint import matches, record, recorded

    out = Path(student.config.out)
    done = out / "distillation.json"
    if not done.is_file():
        return None
    if matches(out, fingerprint, {"distill": DistillConfig}):
        if not dry_run and recorded(out) != fingerprint["fingerprint"]:
            record(out, fingerprint)  # in today's terms
        return "done already (same settings)"
    try:
        adoptable = recorded(out) is None and _same_options(
            json.loads(done.read_text(encoding="utf-8")), student.config
        )
    except (OSError, ValueError):
        adoptable = False
    if adoptable:
        if not dry_run:
            record(out, fingerprint)
        return "done already (distilled with these options; adopted)"
    return None


# the options a full-vocabulary student may differ in from a post-VR student whose distillation it is: the
# vocabulary's (the selection options act only after training, on the post-VR student)
VOCABULARY_OPTIONS = {"vocab_reduce", "vocab_min_fraction", "vocab_min_count", "vocab_max_size", "vocab_coverage"}


def full_vocabulary_twin(student: Student, students: list[Student]) -> Student | None:
    """The student of the experiment whose distillation a ``--vocab-reduce post`` student's is, to the last digit:
    the same language, on the full vocabulary, and every other option the same (a masked-LM student without
    VocabAmp); None when there is none."""
    if student.config.vocab_reduce != "post" or student.config.objective == "embedding" or student.config.vocab_amp:
        return None

    def options(s: Student) -> dict:
        return {k: v for k, v in to_dict(s.config).items() if k not in NOT_IN_FINGERPRINT | VOCABULARY_OPTIONS}

    mine = options(student)
    for other in students:
        if other.language == student.language and other.config.vocab_reduce == "none" and options(other) == mine:
            return other
    return None


def derive(student: Student, twin: Student, dry_run: bool) -> tuple[str, float]:
    """``(what happened, seconds)`` for a post-VR student made by reducing its full-vocabulary twin's finished
    network (``eliquare.distill.post_reduce``) instead of distilling the same network again; distilled as usual
    when the twin's directory holds no student that can be reduced."""
    from eliquare.distill.post_reduce import reduce_distilled, reducible_record
    from eliquare.fingerprint import record

    fingerprint = student_fingerprint(student)
    if (done := _done_already(student, fingerprint, dry_run)) is not None:
        return done, 0.0
    if dry_run:
        return f"to run: reduce {twin.name}'s distilled network (the same distillation)", 0.0
    if reducible_record(twin.config.out) is None:
        return distil(student, dry_run)
    started = time.perf_counter()
    out = reduce_distilled(twin.config.out, student.config, log=lambda message: print(message, file=sys.stderr))
    record(out, fingerprint)
    return f"reduced from {twin.name}'s distilled network (the same distillation)", time.perf_counter() - started


def distillation_record(out) -> dict:
    """A finished student's distillation.json ({} when there is none): its wall time and machine, for stages.tsv."""
    try:
        record = json.loads((Path(out) / "distillation.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}
