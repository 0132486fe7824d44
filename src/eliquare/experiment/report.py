"""The experiment's report stage: ``report.md`` (Tables 4-7 and Figures 4-5, ``eliquare.evaluate.report``) with
the ablation tables (Tables 6 and 7) of its one-language students, a Wilcoxon signed-rank test of every student
against the reference over (dataset, seed) pairs, and the machines its stages ran on appended; beside it the
results tables, the experiment file and ``stages.tsv`` (what each stage did, its wall time and machine)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from eliquare.atomic import write_json
from eliquare.config import CompareConfig, ExperimentConfig, ReportConfig, to_dict
from eliquare.errors import EliquareError
from eliquare.experiment.students import NOT_IN_FINGERPRINT, Student, distillation_record


def ablation_rows(students: list[Student]) -> list[dict]:
    """What the report's ablation tables (Tables 6 and 7) need of each finished one-language student, from its
    ``distillation.json``: the loss weights and temperature it was trained with (as resolved: a headless
    teacher's CE weight is 0), every other option, and the health of its kept checkpoint."""
    from eliquare.evaluate.report import LOSS_TERMS

    rows = []
    for s in students:
        record = distillation_record(s.config.out)
        if "+" in s.language or not isinstance(record.get("loss_weights"), dict):
            continue
        weights = {k: float(record["loss_weights"].get(k) or 0) for k in LOSS_TERMS}
        others = {k: v for k, v in record["loss_weights"].items() if k not in LOSS_TERMS}
        rest = {
            k: v
            for k, v in to_dict(s.config).items()
            if k not in NOT_IN_FINGERPRINT and k not in {"alpha_ce", "alpha_cos", "alpha_mlm", "temperature"}
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


def student_rows(students: Sequence[Student]) -> list[dict]:
    """What each finished student is, from its ``distillation.json``: size against the teacher's, the inference
    throughput of both encoders measured side by side in one process at the end of its run (the paper's Table 5),
    its vocabulary, the kept checkpoint's validation loss and health, and its wall time."""
    rows = []
    for s in students:
        record = distillation_record(s.config.out)
        if not record:
            continue
        reduce = record.get("vocab_reduce") or {}
        speed = (record.get("inference") or {}).get("sequences_per_second") or {}
        validation = [v for v in record.get("validation") or [] if isinstance(v, dict)]
        best = next((v for v in validation if v.get("eval_loss") == record.get("best_validation_loss")), {})
        teacher_params = record.get("teacher_parameters")
        if s.config.vocab_reduce == "pre" and (reduce.get("parameters") or {}).get("before"):
            teacher_params = reduce["parameters"]["before"]  # the teacher as given, not the reduced one it distils
        student_params = record.get("student_parameters")  # counted as saved: after a post-distillation reduction
        rows.append(
            {
                "name": s.name,
                "language": s.language,
                "vocab_reduce": s.config.vocab_reduce,
                "vocab_size": (reduce.get("vocab_size") or {}).get("after"),
                "retokenised_word_tokens": (reduce.get("retokenised_words") or {}).get("tokens"),
                "teacher_parameters": teacher_params,
                "student_parameters": student_params,
                "parameters_ratio": round(student_params / teacher_params, 4)
                if student_params and teacher_params
                else None,
                "sequences_per_second": speed,
                "speed_up": round(speed["student"] / speed["teacher"], 3)
                if speed.get("student") and speed.get("teacher")
                else None,
                "inference_shape": {k: (record.get("inference") or {}).get(k) for k in ("batch", "length", "threads")},
                "epochs": record.get("epochs"),
                "steps": record.get("steps"),
                "best_validation_loss": record.get("best_validation_loss"),
                "health": {k: best.get(f"eval_{k}") for k in ("collapse", "cka", "probe") if f"eval_{k}" in best},
                "wall_seconds": record.get("wall_seconds"),
                # a post-VR student made from its full-vocabulary twin's network: the twin's name
                "derived_from": Path(derived["student"]).parent.name
                if (derived := record.get("derived_from"))
                else None,
                "machine": record.get("machine"),
            }
        )
    return rows


def students_section(rows: list[dict]) -> str:
    """The report's table of the students' sizes and speed-ups ("" when no student finished)."""
    if not rows:
        return ""

    def num(x, f):
        return "-" if x is None else format(x, f)

    lines = [
        "\n## Students: size and speed beside the teacher (Table 5)\n",
        "Parameters as `distillation.json` counts them: the student as saved (its MLM head included) against the "
        "teacher as given (before a pre-distillation VocabReduce); speed-up: sequences per second of the student's "
        "encoder over the teacher's, both on the same random batch in interleaved rounds at the end of the student's "
        "run (`students.json`).\n",
        "| student | language | VocabReduce | vocabulary | words re-tokenised | parameters / teacher | speed-up "
        "| collapse | CKA | probe | distillation (min) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        h = r["health"]
        minutes = None if r["wall_seconds"] is None else r["wall_seconds"] / 60
        took = f"{r['derived_from']}'s, reduced" if r.get("derived_from") else num(minutes, ".0f")
        vocab = "full" if r["vocab_reduce"] == "none" else num(r["vocab_size"], ",")
        lines.append(
            f"| {r['name']} | {r['language']} | {r['vocab_reduce']} | {vocab} | "
            f"{num(r['retokenised_word_tokens'], '.1%')} | {num(r['parameters_ratio'], '.3f')} | "
            f"{num(r['speed_up'], '.2f')}x | {num(h.get('collapse'), '.3f')} | {num(h.get('cka'), '.3f')} | "
            f"{num(h.get('probe'), '.3f')} | {took} |"
        )
    return "\n".join(lines) + "\n"


def wilcoxon_tests(
    out: Path, results: Path, reference: str | None, student_names: list[str], rows: list[dict]
) -> tuple[dict, list[str]]:
    """Each student with results against ``reference`` (``eliquare compare``, written to
    ``results/wilcoxon-<name>.json``): the tests by student, and one report line each (a student that cannot be
    tested says why)."""
    from eliquare.evaluate.compare import compare

    lines, tests = [], {}
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
    return tests, lines


def machines_section(stages: list) -> str:
    """The report's section on the machines that ran the stages which took time ("" when none did)."""
    # machine -> its stages that took time (a stage done in an earlier run keeps its record's)
    machines: dict[str, list] = {}
    for stage, _, seconds, where in stages:
        if round(seconds):  # a stage that took time (not the bookkeeping of a run that only read results back)
            machines.setdefault(where or "not recorded (run by an eliquare that did not record it)", []).append(stage)
    if not machines:
        return ""
    return (
        "\n## Machines\n\n"
        + "".join(f"- {where}: {len(names)} stage(s) ({', '.join(names)})\n" for where, names in machines.items())
        + "\nThe wall time of each stage, and where it ran: `stages.tsv`.\n"
    )


def write_report(
    cfg: ExperimentConfig,
    out: Path,
    results: Path,
    reference: str | None,
    student_names: list[str],
    stages: list,
    students: Sequence[Student] = (),
) -> dict:
    """report.md (+ the ablation tables and Wilcoxon tests appended), the results tables, the YAML and the
    stages, in ``results``."""
    from eliquare.evaluate.report import ablation_tables, build_tables, report

    results.mkdir(parents=True, exist_ok=True)
    made = report(ReportConfig(dir=str(out), out=str(results), reference=reference))
    rows = json.loads((out / "results.json").read_text(encoding="utf-8"))["rows"]
    reference = reference or (rows[0]["model"] if rows else None)
    tests, lines = wilcoxon_tests(out, results, reference, student_names, rows)
    sections = []
    ablations = ablation_tables(build_tables(rows, reference), ablation_rows(list(students)), 1)
    if ablations:
        sections.append("\n" + "\n".join(ablations))
    summaries = student_rows(students)
    if summaries:
        write_json(results / "students.json", {"students": summaries}, indent=2)
        sections.append(students_section(summaries))
    if lines:
        sections.append("\n## Wilcoxon signed-rank tests (two-sided)\n\n" + "\n".join(lines) + "\n")
    for name in ("results.json", "results.csv"):
        shutil.copyfile(out / name, results / name)
    shutil.copyfile(cfg.experiment, results / Path(cfg.experiment).name)
    with open(results / "stages.tsv", "w", encoding="utf-8") as f:
        f.write("stage\twhat\tseconds\tmachine\n" + "".join(f"{s}\t{w}\t{t:.0f}\t{m}\n" for s, w, t, m in stages))
    if machines := machines_section(stages):
        sections.append(machines)
    if sections:
        md = Path(made["report"])
        md.write_text(md.read_text(encoding="utf-8") + "".join(sections), encoding="utf-8")
    return {"report": made["report"], "wilcoxon": tests}
