"""Writes that a crash or a kill -9 cannot leave half done: a file or a directory holds the old content or
the new, never a mixture.

- ``write_json``: a temporary name in the same directory, flushed to disk, then renamed over the target;
- ``Replacement``: a directory's new content is built in ``OUT.partial`` (beside OUT, so the rename is one
  filesystem operation) and swapped in only once it is complete. A run that fails or is killed leaves OUT as
  it was, and no file of the old OUT survives into the new one. A kill leaves ``OUT.partial`` (marked by a
  file in it), which the next run removes. (``eliquare distill``'s ``distill.rundir.RunDirectory``
  swaps its checkpoints in the same way.)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from eliquare.errors import EliquareError, check_writable

PARTIAL_MARK = ".eliquare-partial"


def write_json(path: Path, data, indent: int | None = 1) -> None:
    """``path`` holds the old content or the new, never half of one (the temporary file is the process's own, so
    two processes writing the same path side by side do not write into one temporary file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, indent=indent, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class Replacement:
    """Build ``out``'s new content beside it and swap it in when complete (see the module's docstring).

    Made before anything slow, so that an ``OUT.partial`` that is not ours is reported first."""

    def __init__(self, out: Path, command: str):
        self.out = out
        self.work = out.parent / f"{out.name}.partial"
        self.command = command
        if self.work.exists() and not (self.work / PARTIAL_MARK).is_file():
            raise EliquareError(
                f"{self.work} is in the way: {command} builds its output there before it moves it to "
                f"{out}; move or remove it"
            )
        check_writable(out.parent, "the directory of --out")

    def write(self, save: Callable[[Path], object]) -> Path:
        """``save(directory)`` into ``OUT.partial``, then the swap; on any failure the partial goes, OUT stays."""
        shutil.rmtree(self.work, ignore_errors=True)  # an interrupted run's leftover (it has the mark)
        self.work.mkdir(parents=True)
        (self.work / PARTIAL_MARK).write_text(
            f"{self.command} is building the new {self.out} here; it is moved there when complete\n"
        )
        try:
            save(self.work)
            (self.work / PARTIAL_MARK).unlink()
            swap_in(self.work, self.out)
        except BaseException:
            shutil.rmtree(self.work, ignore_errors=True)
            raise
        return self.out


def swap_in(new: Path, target: Path) -> None:
    """Put directory ``new`` where ``target`` is. ``target``, where it exists, is replaced in one step where the
    system can exchange two paths, else in two renames with the old one put back on failure; it is removed only
    once ``new`` is in place."""
    if not target.exists():
        new.rename(target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.replaced-", dir=target.parent))
    try:
        held = old / target.name
        new.rename(held)  # out of its work place first: a kill from here on leaves only the hidden directory
        if _exchange(held, target):  # one step: target is the old or the new at every instant
            return
        held.rename(new)
        target.rename(held)  # no atomic exchange here: a short window without target
        try:
            new.rename(target)
        except OSError:
            held.rename(target)  # the old one back in its place
            raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the system or the
    file system has no such call (the caller then renames in two steps)."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def file_checksum(path: Path) -> str:
    """A file's bytes as a short hash (what a completeness marker records, to tell a damaged file)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
