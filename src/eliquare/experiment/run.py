"""``eliquare experiment``'s three stages in order: distil the students that the chosen jobs need
(``eliquare.experiment.students``) and write their initialisations (``eliquare.experiment.initialisations``),
fine-tune every model (``eliquare.evaluate.suite``), write the report (``eliquare.experiment.report``), each stage
said on stderr and kept for ``stages.tsv``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from eliquare.config import EvaluateConfig, ExperimentConfig
from eliquare.errors import EliquareError
from eliquare.experiment.initialisations import read_initialisations, write_initialisation
from eliquare.experiment.report import write_report
from eliquare.experiment.students import (
    Student,
    derive,
    distil,
    distillation_record,
    full_vocabulary_twin,
    read_students,
)
from eliquare.speed import machine


def experiment(cfg: ExperimentConfig) -> dict:
    from eliquare.evaluate.suite import read_suite

    out = Path(cfg.out).expanduser()
    results = Path(cfg.results).expanduser() if cfg.results else out / "report"
    where = f"experiment {cfg.experiment}"
    raw = read_suite(cfg.experiment, cfg.var)
    students = read_students(raw, out, cfg, where)
    inits = read_initialisations(raw, students, out, where)
    reference = (raw.get("report") or {}).get("reference")
    dirs: dict[str, dict[str, str]] = {}
    for s in students:
        for language in s.languages:  # a student of several languages (sw+sl) is fine-tuned on each one's tasks
            dirs.setdefault(s.name, {})[language] = s.config.out
    for i in inits:
        for language in i.student.languages:
            dirs.setdefault(i.name, {})[language] = str(i.out)
    jobs = chosen_jobs(cfg, where, dirs, reference)
    needed = {(j.model, j.dataset.get("language")) for j in jobs}
    inits = [i for i in inits if any((i.name, language) in needed for language in i.student.languages)]
    needed |= {(i.student.name, language) for i in inits for language in i.student.languages}  # made from them
    stages: list[tuple[str, str, float, str]] = []  # stage, what, seconds, machine
    say = stage_recorder(stages)
    changing = distil_students(students, needed, cfg.dry_run, say, cfg.workers)
    for i in inits:
        what, seconds = write_initialisation(i, cfg.dry_run, i.student.config.out in changing)
        say(f"initialise {i.key}", what, seconds)
        if what.startswith("to run"):
            changing.add(str(i.out))
    started = time.perf_counter()
    failed, table = finetune_models(cfg, out, dirs, changing)
    if cfg.dry_run:
        return {"stages": stages, "rows": table["rows"]}
    for row in table["rows"]:
        stages.append(
            (
                f"finetune {row['model']}/{row['dataset']}",
                row.get("status", ""),
                float(row.get("train_seconds") or 0),
                row.get("machine") or "",
            )
        )
    say("fine-tune", "jobs failed" if failed else "all jobs done", time.perf_counter() - started)
    if reference and not any(r["model"] == reference for r in table["rows"]):
        # a run split with --only (another core runs the reference's jobs): the jobs are done, the report waits
        say(
            "report",
            f"not written: the reference {reference} has no results in {out} yet; run again without "
            f"--only once its jobs are done",
            0.0,
        )
        if failed is not None:
            raise failed
        return {"stages": stages, "rows": table["rows"]}
    made = write_report(cfg, out, results, reference, sorted(dirs), stages, students)
    if failed is not None:
        raise failed
    return {"stages": stages, **made}


def chosen_jobs(cfg: ExperimentConfig, where: str, dirs: dict, reference: str | None) -> list:
    """The fine-tuning jobs ``--only`` picks, once every job of the file is checked and the report's reference is
    found among its models (before anything runs, not once the jobs are done)."""
    from eliquare.evaluate.suite import load_suite, select_jobs

    every = load_suite(cfg.experiment, cfg.var, None, dirs)  # every option checked first
    names = list(dict.fromkeys(j.model for j in every))
    if reference is not None and reference not in names:
        raise EliquareError(
            f"{where}: report: reference {reference} is not one of its models ({', '.join(names)}); name one of them"
        )
    return select_jobs(every, cfg.only)


def stage_recorder(stages: list):
    """A ``say(stage, what, seconds)`` that appends the stage to ``stages`` and says it on stderr."""

    def say(stage: str, what: str, seconds: float, took: float | None = None, where: str | None = None) -> None:
        """``took``, ``where``: for stages.tsv, the wall time and machine of a stage done in an earlier run."""
        stages.append((stage, what, seconds if took is None else took, machine() if where is None else where))
        print(f"eliquare: {stage}: {what}" + (f" ({seconds:.0f} s)" if seconds else ""), file=sys.stderr, flush=True)

    return say


def distil_students(students: list[Student], needed: set, dry_run: bool, say, workers: int = 1) -> set:
    """Stage 1: each student a chosen job fine-tunes, distilled (or found done), ``workers`` of them side by side,
    then each post-VR student with a full-vocabulary twin made from the twin's network; returns the directories of
    the students a dry run would make (their fine-tunes are to run too)."""
    chosen = [s for s in students if any((s.name, language) in needed for language in s.languages)]
    twins = {s.key: t for s in chosen if (t := full_vocabulary_twin(s, students)) is not None}
    first = {s.key: s for s in chosen if s.key not in twins} | {t.key: t for t in twins.values()}
    changing = set()

    def said(student: Student, what: str, seconds: float) -> None:
        if what.startswith("done already"):
            record = distillation_record(student.config.out)
            took, where = float(record.get("wall_seconds") or 0), record.get("machine", "")
            say(f"distil {student.key}", what, seconds, took=took, where=where)
        else:
            say(f"distil {student.key}", what, seconds)
        if what.startswith("to run"):
            changing.add(student.config.out)

    for student, (what, seconds) in _distilled(list(first.values()), dry_run, workers):
        said(student, what, seconds)
    for student in (s for s in chosen if s.key in twins):
        said(student, *derive(student, twins[student.key], dry_run))
    return changing


def _distilled(students: list[Student], dry_run: bool, workers: int):
    """``(student, (what happened, seconds))`` of each: in this process one after another, or as they finish in
    ``workers`` processes side by side (``eliquare.workers``)."""
    if dry_run or workers <= 1 or len(students) <= 1:
        for student in students:
            yield student, distil(student, dry_run)
        return
    from eliquare.workers import side_by_side

    for i, future in side_by_side(distil, [(s, False) for s in students], workers):
        yield students[i], future.result()


def finetune_models(cfg: ExperimentConfig, out: Path, dirs: dict, changing: set) -> tuple[EliquareError | None, dict]:
    """Stage 2: every chosen job fine-tuned into ``out``; returns (the error of the jobs that failed, the results
    table). Where some jobs failed the table still holds the others, for the report."""
    from eliquare.evaluate.suite import evaluate

    try:
        table = evaluate(
            EvaluateConfig(
                suite=cfg.experiment,
                out=str(out),
                var=cfg.var,
                only=cfg.only,
                use_cpu=cfg.use_cpu,
                bf16=cfg.bf16,
                dry_run=cfg.dry_run,
                keep_going=cfg.keep_going,
                workers=cfg.workers,
            ),
            students=dirs,
            changing=changing,
        )
    except EliquareError as e:  # some jobs failed: the report still shows the others, and names the failed
        if not (out / "results.json").is_file():
            raise
        return e, json.loads((out / "results.json").read_text(encoding="utf-8"))
    return None, table
