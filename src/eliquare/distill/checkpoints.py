"""Which checkpoints may be resumed from: only complete ones.

transformers' Trainer writes ``checkpoint-N`` in place, file after file (model, optimizer, scheduler,
RNG, then ``trainer_state.json``), and ``--resume`` with ``resume_from_checkpoint=True`` takes the
highest N whatever it holds: a run killed while saving resumed from a half-written checkpoint (a
truncated model file is an unreadable-file traceback; a missing ``optimizer.pt`` is silently a fresh
optimizer, and so not the run that was interrupted).

Here a checkpoint is complete when ``CompleteCheckpoints.on_save`` (which the Trainer calls once the
checkpoint is written) has flushed its files to disk and written ``MARKER`` beside them, by a
temporary name and a rename, with every file's size and checksum. ``resume_point`` walks the
checkpoints from the newest, verifies each against its marker and resumes from the first that
holds; newer ones that do not are named in one line each and removed (they would otherwise sit
among the checkpoints the Trainer rotates). A checkpoint without a marker (one of an earlier
eliquare, or one killed between the Trainer's save and the marker) counts when its
``trainer_state.json``, the file the Trainer writes last, reads whole and names its step.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from transformers import TrainerCallback

from eliquare.atomic import file_checksum as _checksum
from eliquare.atomic import write_json
from eliquare.errors import EliquareError

MARKER = "eliquare-complete.json"
_STEP = re.compile(r"^checkpoint-(\d+)$")
# what a resume needs besides trainer_state.json (rng_state.pth is rng_state_<rank>.pth under torchrun)
_NEEDED = ("model.safetensors", "optimizer.pt", "scheduler.pt")


def _files(directory: Path) -> list[Path]:
    return sorted(f for f in directory.rglob("*") if f.is_file() and f.name != MARKER and not f.name.startswith("."))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mark_complete(checkpoint: Path) -> None:
    """Flush every file of ``checkpoint`` to disk, then record their sizes and checksums in its marker."""
    files = _files(checkpoint)
    for f in files:
        _fsync(f)
    write_json(
        checkpoint / MARKER,
        {
            "step": _step(checkpoint) if _STEP.match(checkpoint.name) else None,
            "files": {str(f.relative_to(checkpoint)): [f.stat().st_size, _checksum(f)] for f in files},
        },
    )
    _fsync(checkpoint)


def refresh_marker(checkpoint: Path, name: str) -> None:
    """After eliquare itself rewrote one file of a complete checkpoint (``trainer_state.json``'s paths)."""
    path = checkpoint / MARKER
    if not path.is_file():
        return
    marker = json.loads(path.read_text(encoding="utf-8"))
    f = checkpoint / name
    marker["files"][name] = [f.stat().st_size, _checksum(f)]
    write_json(path, marker)


class CompleteCheckpoints(TrainerCallback):
    """Write the completeness marker of each checkpoint once the Trainer has finished it (``on_save``)."""

    def on_save(self, args, state, control, **kwargs):
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()  # every process has written its rng_state_<rank>.pth
        if state.is_world_process_zero:
            mark_complete(Path(args.output_dir) / f"checkpoint-{state.global_step}")
        return control


def why_incomplete(checkpoint: Path, checksums: bool = True) -> str | None:
    """None for a complete checkpoint; else what is wrong with it, in a few words (``checksums=False``: the files
    are there with their sizes, enough to tell a checkpoint that a kill left half deleted)."""
    marker = checkpoint / MARKER
    if marker.is_file():
        try:
            files = json.loads(marker.read_text(encoding="utf-8"))["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return f"its {MARKER} is unreadable"
        for name, (size, checksum) in sorted(files.items()):
            f = checkpoint / name
            if not f.is_file():
                return f"{name} is missing"
            if f.stat().st_size != size:
                return f"{name} has {f.stat().st_size} bytes, {size} when it was written"
            if checksums and _checksum(f) != checksum:
                return f"{name} has changed since it was written (checksum)"
        return None
    try:  # no marker: trainer_state.json is written last, so a whole one means the rest was written
        state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "it was not finished (no completeness marker, no readable trainer_state.json)"
    step = _STEP.match(checkpoint.name)
    if not isinstance(state, dict) or (step and state.get("global_step") != int(step.group(1))):
        return "its trainer_state.json is not this checkpoint's"
    missing = [n for n in _NEEDED if not (checkpoint / n).is_file()]
    if not any(checkpoint.glob("rng_state*.pth")):
        missing.append("rng_state.pth")
    return f"{', '.join(missing)} missing" if missing else None


@dataclass
class ResumePoint:
    """The checkpoint a --resume continues from, the newer ones it passes over and the older ones left incomplete
    (a kill while the Trainer deleted an old checkpoint), each with why."""

    path: Path
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def notices(self) -> list[str]:
        return [
            f"notice: --resume skips {p} ({why}) and continues from {self.path.name}; it is removed"
            if _step(p) > _step(self.path)
            else f"notice: --resume removes {p}, left incomplete ({why})"
            for p, why in self.skipped
        ]

    def remove_skipped(self) -> None:
        for p, _ in self.skipped:
            shutil.rmtree(p, ignore_errors=True)


def checkpoints_of(folder: Path) -> list[Path]:
    """``checkpoint-N`` directories of ``folder``, newest (highest N) first."""
    found = [p for p in folder.iterdir() if p.is_dir() and _STEP.match(p.name)] if folder.is_dir() else []
    return sorted(found, key=_step, reverse=True)


def _step(checkpoint: Path) -> int:
    """N of a ``checkpoint-N`` directory (callers pass only names ``_STEP`` matches)."""
    match = _STEP.match(checkpoint.name)
    assert match is not None, checkpoint.name
    return int(match.group(1))


def resume_point(folder: Path) -> ResumePoint:
    """The newest complete checkpoint of ``folder`` (see the module's docstring); one line if there is none.

    Older checkpoints that are incomplete go too: a half-deleted one (a kill during the Trainer's rotation) would
    stay for good, its directory's new mtime making the rotation, which sorts by mtime, delete others first."""
    skipped: list[tuple[Path, str]] = []
    checkpoints = checkpoints_of(folder)
    for i, checkpoint in enumerate(checkpoints):
        why = why_incomplete(checkpoint)
        if why is None:
            older = [(c, w) for c in checkpoints[i + 1 :] if (w := why_incomplete(c, checksums=False)) is not None]
            return ResumePoint(checkpoint, skipped + older)
        skipped.append((checkpoint, why))
    if not skipped:
        raise EliquareError(f"--resume: no checkpoint found in {folder}; start without --resume")
    raise EliquareError(
        f"--resume: no complete checkpoint in {folder} ({'; '.join(f'{p.name}: {w}' for p, w in skipped)}"
        "); start afresh with --overwrite"
    )


def has_complete_checkpoint(folder: Path) -> bool:
    """Whether a --resume in ``folder``'s run has a checkpoint to continue from."""
    return any(why_incomplete(c) is None for c in checkpoints_of(folder))


class NoStepPastTheEnd:
    """A Trainer mixin: a run resumed from its last checkpoint (killed after the Trainer saved it, while the best
    model was loaded or the student written) trains no further.

    transformers' Trainer checks ``max_steps`` only after a step, so resuming at ``global_step == max_steps`` took
    one step more (at learning rate 0, then an evaluation and a checkpoint-N+1): the weights stayed, but
    ``distillation.json`` said N+1 steps and held one evaluation more than the uninterrupted run's."""

    def _run_epoch(self, *args, **kwargs):
        if 0 < self.state.max_steps <= self.state.global_step:
            self.control.should_training_stop = True
            return None
        return super()._run_epoch(*args, **kwargs)
