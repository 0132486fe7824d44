"""One job of an evaluation suite: a model fine-tuned on a dataset.

``Job`` is what the suite file says of it; ``config_for`` makes its ``FinetuneConfig`` (suite defaults < the job's
options < the command line); ``job_fingerprint`` is what its score depends on; ``run_job`` skips it when it is done
with the same fingerprint, and otherwise runs it, keeping the seeds an earlier or interrupted run finished with the
same settings (``SEEDS_DONE``).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import traceback
from pathlib import Path

from eliquare.errors import EliquareError, first_line
from eliquare.evaluate.results import job_row


@dataclasses.dataclass
class Job:
    model: str  # name
    model_spec: str
    dataset: dict
    options: dict  # FinetuneConfig options

    @property
    def key(self) -> str:
        return f"{self.model}/{self.dataset['name']}"

    def row(self, run_dir: Path, summary: dict | None, status: str, error: str = "") -> dict:
        return job_row(self.model, self.model_spec, self.dataset, run_dir, summary, status, error)


def config_for(job: Job, cfg, run_dir: Path):
    """The job's ``FinetuneConfig`` (``cfg``: the ``EvaluateConfig``): suite defaults < the job's options < the
    command line, writing into ``run_dir``."""
    from eliquare.config import FinetuneConfig, build_config

    d = job.dataset
    base = {
        "model": job.model_spec,
        "task": d["task"],
        "train": d["train"],
        "dev": d.get("dev"),
        "test": d.get("test"),
        "out": str(run_dir),
    }
    cli = {
        k: getattr(cfg, k)
        for k in ("epochs", "max_steps", "seeds", "batch_size", "max_length", "max_train_examples")
        if getattr(cfg, k) is not None
    }
    if cfg.use_cpu:
        cli["use_cpu"] = True
    if cfg.bf16 is not None:
        cli["bf16"] = cfg.bf16
    where = f"suite {cfg.suite}, job {job.key}"
    try:
        return build_config(
            FinetuneConfig,
            ("suite defaults", {"save_model": cfg.save_model}),
            (where, {**job.options, **base}),
            ("command line", cli),
        )
    except EliquareError as e:
        if str(e).startswith(("suite ", "command line")):  # build_config named the option's source already
            raise
        raise EliquareError(f"{where}: {e}") from None  # FinetuneConfig's own checks: name the job


def job_fingerprint(fcfg) -> dict:
    """What a job's score depends on: its options, the model's fingerprint, the data files' bytes, the code."""
    from eliquare.config import to_dict
    from eliquare.fingerprint import files_fingerprint, model_fingerprint, stage_fingerprint
    from eliquare.training import resolve_bf16

    options = {k: v for k, v in to_dict(fcfg).items() if k not in _NOT_IN_FINGERPRINT}
    options["bf16"] = resolve_bf16(fcfg.bf16, fcfg.use_cpu)  # what the job runs with, not whether it was asked
    return stage_fingerprint(
        finetune=options, model=model_fingerprint(fcfg.model), data=files_fingerprint([fcfg.train, fcfg.dev, fcfg.test])
    )


# the seeds an unfinished job has finished (their run records), beside its fingerprint for that list of seeds
SEEDS_DONE = "seeds-done.json"

# options that change where or how verbosely a job runs, not its result (the model and files are fingerprinted)
_NOT_IN_FINGERPRINT = {
    "out",
    "overwrite",
    "progress",
    "logging_steps",
    "model",
    "train",
    "dev",
    "test",
    "cache_encodings",
}


def _read_summary(run_dir: Path) -> dict | None:
    """The job's finished result (``metrics.json``), or None when there is none or it is unreadable."""
    if (run_dir / "metrics.json").exists():
        try:
            return json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
    return None


def _earlier_result(run_dir: Path, summary: dict | None) -> tuple[dict | None, bool]:
    """``(earlier, interrupted)``: the seeds an interrupted run finished (``SEEDS_DONE``, newer than any
    ``metrics.json`` there: it goes when the job finishes), else the finished result ``summary``."""
    earlier, interrupted = summary, False
    if (run_dir / SEEDS_DONE).exists():
        try:
            earlier, interrupted = json.loads((run_dir / SEEDS_DONE).read_text(encoding="utf-8")), True
        except (OSError, json.JSONDecodeError):
            earlier = None
    return earlier, interrupted


def _why_it_runs(model_changes: bool, reuse: dict, interrupted: bool, summary: dict | None) -> str:
    """Why the job runs, as its log line says."""
    kept = ", ".join(map(str, sorted(reuse)))
    return (
        "its model is made again"
        if model_changes
        else f"interrupted; keeping its finished seed(s) {kept}"
        if reuse and interrupted
        else f"other seeds; keeping seed(s) {kept}"
        if reuse
        else "settings changed since it ran"
        if summary is not None
        else "not run yet"
    )


def _seeds_done_recorder(run_dir: Path, fingerprint: dict):
    """``on_seed`` of ``finetune``: records the seeds finished so far, under the fingerprint of that list of seeds, so
    that a rerun after an interruption keeps them as it keeps the seeds of a finished result with other seeds."""
    from eliquare.atomic import write_json
    from eliquare.fingerprint import digest, record

    def seed_done(runs: list[dict], seeds: list[int]) -> None:
        write_json(run_dir / SEEDS_DONE, {"layout": seeds, "seeds": [r["seed"] for r in runs], "runs": runs}, indent=2)
        parts = {
            **fingerprint["parts"],
            "finetune": {**fingerprint["parts"]["finetune"], "seeds": [r["seed"] for r in runs]},
        }
        record(run_dir, {"fingerprint": digest(parts), "parts": parts})  # no model or data hashed again

    return seed_done


def _run(fcfg, job: Job, head: str, fingerprint: dict, reuse: dict, earlier: dict | None) -> tuple[dict, str]:
    """Fine-tune the job into its run directory: ``(row, error)``, the error written to ``error.txt`` there."""
    from eliquare.evaluate.finetune import finetune
    from eliquare.fingerprint import FILE as FINGERPRINT_FILE
    from eliquare.fingerprint import record

    run_dir = Path(fcfg.out)
    t0 = time.perf_counter()
    try:
        fcfg.overwrite = True  # an interrupted run's leftovers, or a result of other settings
        (run_dir / FINGERPRINT_FILE).unlink(missing_ok=True)  # the old result is going: a kill must not leave it "done"
        layout = None
        if reuse:
            assert earlier is not None  # reuse holds runs of the earlier result
            layout = earlier.get("layout") or earlier.get("seeds")
        seed_done = _seeds_done_recorder(run_dir, fingerprint)
        summary = finetune(fcfg, reuse=reuse, reuse_layout=layout, on_seed=seed_done)
        record(run_dir, fingerprint)
        (run_dir / SEEDS_DONE).unlink(missing_ok=True)
        (run_dir / "error.txt").unlink(missing_ok=True)
        return job.row(run_dir, summary, "ok"), ""
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - one failed job must not lose the others
        msg = first_line(e)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
        print(f"{head}: FAILED after {time.perf_counter() - t0:.0f}s: {msg}", file=sys.stderr, flush=True)
        return job.row(run_dir, None, "failed", msg), msg


def run_job(fcfg, job: Job, head: str, dry_run: bool, model_changes: bool = False) -> tuple[dict, str]:
    """``(row, error)`` of one job: skipped when it is done with the same fingerprint, else (re)run."""
    from eliquare.config import FinetuneConfig
    from eliquare.fingerprint import matches

    run_dir = Path(fcfg.out)
    fingerprint = job_fingerprint(fcfg)
    summary = _read_summary(run_dir)
    configs = {"finetune": FinetuneConfig}
    same = matches(run_dir, fingerprint, configs)
    if summary is not None and same and not model_changes:
        print(f"{head}: done already, skipped (same settings)", file=sys.stderr, flush=True)
        return job.row(run_dir, summary, "ok"), ""
    earlier, interrupted = _earlier_result(run_dir, summary)  # a finished result, or an interrupted run's seeds
    reuse = {}  # the same settings but for the list of seeds: the seeds that ran already are kept
    if (
        earlier is not None
        and not model_changes
        and matches(run_dir, fingerprint, configs, ignore={"finetune": ("seeds", "seed")})
    ):
        wanted = set(fcfg.seeds or [fcfg.seed])
        reuse = {r["seed"]: r for r in earlier.get("runs", []) if isinstance(r, dict) and r.get("seed") in wanted}
    why = _why_it_runs(model_changes, reuse, interrupted, summary)
    if dry_run:
        print(f"{head}: to run ({why})", file=sys.stderr, flush=True)
        return job.row(run_dir, None, "pending"), ""
    print(f"{head}: running into {run_dir} ({why})", file=sys.stderr, flush=True)
    return _run(fcfg, job, head, fingerprint, reuse, earlier)
