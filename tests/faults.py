"""Fault injection for the tests: run an eliquare command in a child process and SIGKILL it at a chosen moment.

The child is forked from the test process, so it starts with eliquare, torch and transformers already
imported: a kill delay drawn over the command's run lands in its work (reading the corpus, training, writing
a checkpoint), not in the seconds of a fresh interpreter's imports. It is a process of its own all the same,
killed from outside with ``os.kill(pid, SIGKILL)``: no handler, no ``finally``, no flush runs in it.

``trigger`` arms the kill when a condition on disk is seen (polled every millisecond), e.g. a checkpoint
directory without its completeness marker, i.e. one the Trainer is writing at that moment.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Outcome:
    code: int | None  # the exit status (-9 when the kill landed)
    seconds: float
    log: str  # what the child wrote on stdout and stderr
    seen: str = ""  # what the trigger saw when it armed the kill

    @property
    def killed(self) -> bool:
        return self.code == -signal.SIGKILL


def _child(job: Callable[[], int] | list[str], log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = sys.stderr = open(fd, "w", buffering=1, closefd=False)
    code = 99
    try:
        import torch

        torch.set_num_threads(1)  # no OpenMP pool inherited across the fork
        if callable(job):
            code = int(job() or 0)
        else:
            from eliquare.cli import main

            code = main(job)
    except BaseException:  # noqa: BLE001 - a traceback is what the tests look for
        traceback.print_exc()
    sys.stdout.flush()
    os._exit(code)


class _Exec:
    """``python -m eliquare ARGV`` in a fresh interpreter, with the ``multiprocessing.Process`` calls ``run`` uses."""

    def __init__(self, argv: list[str], log: str):
        import subprocess

        src = str(Path(__file__).resolve().parents[1] / "src")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        self._log = open(log, "w")
        self._popen = subprocess.Popen(
            [sys.executable, "-m", "eliquare", *argv], stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        self.pid = self._popen.pid

    def is_alive(self) -> bool:
        return self._popen.poll() is None

    def join(self) -> None:
        self._popen.wait()
        self._log.close()

    @property
    def exitcode(self) -> int:
        return self._popen.returncode


def run(
    job: Callable[[], int] | list[str],
    log: Path,
    *,
    kill_after: float | None = None,
    trigger: Callable[[], str | None] | None = None,
    timeout: float = 600,
    fresh: bool = False,
) -> Outcome:
    """Run ``eliquare JOB`` (a list of arguments; or a function, whose return is the exit status) in a forked
    child (``fresh``: ``sys.executable -m eliquare`` in a new interpreter); with ``kill_after``, SIGKILL it that
    many seconds after it started (or after ``trigger`` first returned a description)."""
    Path(log).write_text("")  # a child killed before it opened its log has said nothing
    started = time.perf_counter()
    if fresh:
        process = _Exec(job, str(log))
    else:
        process = multiprocessing.get_context("fork").Process(target=_child, args=(job, str(log)))
        process.start()
    armed, seen = (started if trigger is None else None), ""
    while process.is_alive():
        now = time.perf_counter()
        if kill_after is not None:
            if armed is None:
                seen = trigger() or ""
                if seen:
                    armed = now
            if armed is not None and now - armed >= kill_after:
                os.kill(process.pid, signal.SIGKILL)
                break
        if now - started > timeout:
            os.kill(process.pid, signal.SIGKILL)
            raise TimeoutError(f"{job} ran over {timeout} s")
        time.sleep(0.001)
    process.join()
    return Outcome(process.exitcode, time.perf_counter() - started, Path(log).read_text(errors="replace"), seen)


def tracebacks(text: str) -> int:
    return text.count("Traceback (most recent call last)")


def report(stage: str, **figures) -> None:
    """One line of figures in the test output (``pytest -s`` or ``-rA``), and in ``$ELIQUARE_FAULT_REPORT``."""
    line = f"fault injection, {stage}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in figures.items())
    print(line)
    if os.environ.get("ELIQUARE_FAULT_REPORT"):
        with open(os.environ["ELIQUARE_FAULT_REPORT"], "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
