"""Independent jobs (fine-tunes, distillations) side by side: one worker process per share of this machine's
cores, each pinned to its cores with as many torch threads as it has. On a CPU this is how several cores pay: two
threads of one matmul were measured no faster than one here; what two jobs side by side save against one after the
other is measured by ``benchmarks/parallel_jobs.py`` (1.12x on four short
fine-tunes, whose loading dominates). Workers are started with ``spawn`` (a fork of a process that
has torch's threads running can hang)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any


def core_shares(workers: int) -> list[list[int]]:
    """The cores this process may use, dealt out to ``workers`` workers (at most one worker per core)."""
    if hasattr(os, "sched_getaffinity"):
        cores = sorted(os.sched_getaffinity(0))
    else:  # no affinity (macOS, Windows): the workers share every core
        cores = list(range(os.cpu_count() or 1))
    workers = max(1, min(workers, len(cores)))
    return [cores[i::workers] for i in range(workers)]


def _start_worker(shares: list[list[int]], counter) -> None:
    """A worker's start: the next share of cores, its thread count set before torch makes its thread pool."""
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    cores = shares[index % len(shares)]
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(len(cores))
    import torch

    torch.set_num_threads(len(cores))


def side_by_side(fn: Callable[..., Any], calls: Sequence[tuple], workers: int) -> Iterator[tuple[int, Future]]:
    """``fn(*args)`` for each ``args`` of ``calls`` in ``workers`` processes; yields ``(index, future)`` as each
    finishes (``future.result()`` raises what the call raised). ``fn`` and its arguments must be picklable (a
    module-level function, dataclasses). Leaving the loop early cancels the calls not yet started."""
    context = multiprocessing.get_context("spawn")
    shares = core_shares(workers)
    counter = context.Value("i", 0)
    pool = ProcessPoolExecutor(
        max_workers=len(shares), mp_context=context, initializer=_start_worker, initargs=(shares, counter)
    )
    try:
        futures = {pool.submit(fn, *args): i for i, args in enumerate(calls)}
        for future in as_completed(futures):
            yield futures[future], future
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
