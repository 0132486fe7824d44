"""`eliquare experiment`: students distilled, every model fine-tuned, a report with a Wilcoxon test; a rerun
does nothing, a changed student option redoes that student and its fine-tunes, an interrupted student resumes."""

from __future__ import annotations

import json
import os

import pytest
import torch
from test_evaluate_finetune import write_conllu

from eliquare.cli import main
from eliquare.speed import machine

EXPERIMENT = """
vars:
  data: /nonexistent
students:
  tiny-student:
    options: {teacher: "${teacher}", student_layers: 2, max_steps: 4, eval_steps: 2, batch_size: 8,
              gradient_accumulation: 1, max_length: 32, health_sentences: 0, cache_dir: "${data}/cache",
              keep_checkpoints: true}
    languages:
      xx: {corpus: ["${data}/corpus.txt"]}
defaults: {max_steps: 3, warmup_steps: 0, seeds: [1, 2], batch_size: 8, progress: false}
models:
  - {name: teacher, model: "${teacher}"}
datasets:
  - {name: xx-pos, language: xx, task: pos, label: UPOS, train: "${data}/train.conllu", test: "${data}/test.conllu"}
  - {name: yy-pos, language: yy, task: pos, label: UPOS, train: "${data}/train.conllu", test: "${data}/test.conllu"}
report: {reference: teacher}
"""


def _experiment(tmp_path, corpus_file, tiny_bert, text: str = EXPERIMENT):
    """The data, the YAML and the command line of an experiment in ``tmp_path``: (exp, out, results, args)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "corpus.txt").write_text(corpus_file.read_text(encoding="utf-8"), encoding="utf-8")
    write_conllu(data / "train.conllu", 40, seed=1)
    write_conllu(data / "test.conllu", 20, seed=2)
    exp = tmp_path / "exp.yaml"
    exp.write_text(text, encoding="utf-8")
    out, results = tmp_path / "work", tmp_path / "results"
    args = [
        "experiment",
        str(exp),
        "--out",
        str(out),
        "--results",
        str(results),
        "--var",
        f"data={data}",
        f"teacher={tiny_bert}",
    ]
    return exp, out, results, args


def test_experiment_runs_skips_and_reruns_what_changed(tiny_bert, corpus_file, tmp_path, capsys):
    exp, out, results, args = _experiment(tmp_path, corpus_file, tiny_bert)
    assert main(args) == 0
    student = out / "students" / "tiny-student" / "xx"
    assert (student / "distillation.json").is_file() and (student / "fingerprint.json").is_file()
    rows = json.loads((results / "results.json").read_text())["rows"]
    # the teacher on both datasets, the student only on its language's
    assert sorted((r["model"], r["dataset"]) for r in rows) == [
        ("teacher", "xx-pos"),
        ("teacher", "yy-pos"),
        ("tiny-student", "xx-pos"),
    ]
    assert all(r["status"] == "ok" and len(r["scores"]) == 2 for r in rows)
    report = (results / "report.md").read_text()
    assert "## Wilcoxon signed-rank tests" in report and "tiny-student vs teacher: 2 (dataset, seed) pairs" in report
    assert (results / "wilcoxon-tiny-student.json").is_file() and (results / "exp.yaml").is_file()
    assert "distil tiny-student/xx\tdistilled" in (results / "stages.tsv").read_text()
    # where each stage ran: the row of every job, the student's record, stages.tsv and the report name the machine
    here = machine()
    assert f", {os.cpu_count()} logical CPUs, torch {torch.__version__} with " in here
    assert all(r["machine"] == here for r in rows)
    assert json.loads((student / "distillation.json").read_text())["machine"] == here
    assert f"\n- {here}: " in report and "## Machines" in report
    # the student's size and speed beside the teacher's, from its record (Table 5)
    record = json.loads((student / "distillation.json").read_text())
    (summary,) = json.loads((results / "students.json").read_text())["students"]
    speed = record["inference"]["sequences_per_second"]
    assert summary["name"] == "tiny-student" and summary["language"] == "xx"
    assert summary["parameters_ratio"] == round(record["student_parameters"] / record["teacher_parameters"], 4)
    assert summary["speed_up"] == round(speed["student"] / speed["teacher"], 3) and summary["steps"] == record["steps"]
    assert "## Students: size and speed beside the teacher (Table 5)" in report
    assert f"| tiny-student | xx | {summary['vocab_reduce']} | " in report
    assert all(line.endswith("\t" + here) for line in (results / "stages.tsv").read_text().splitlines()[1:])

    capsys.readouterr()
    assert main(args) == 0  # all done with the same settings: nothing runs
    err = capsys.readouterr().err
    assert "distil tiny-student/xx: done already (same settings)" in err and err.count("done already, skipped") == 3
    # the report of a rerun keeps the wall time of every stage as it ran (the distillation's from its record)
    took = json.loads((student / "distillation.json").read_text())["wall_seconds"]
    assert (
        took > 0
        and f"distil tiny-student/xx\tdone already (same settings)\t{took:.0f}\t{here}\n"
        in (results / "stages.tsv").read_text()
    )

    # another student option: that student is distilled again and its fine-tune rerun; the teacher's are kept
    exp.write_text(EXPERIMENT.replace("max_steps: 4", "max_steps: 6"), encoding="utf-8")
    assert main(args + ["--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "to run: distil again (settings changed)" in err
    assert err.count("done already, skipped") == 2 and "tiny-student on xx-pos (pos): to run" in err
    assert main(args) == 0
    assert json.loads((student / "distillation.json").read_text())["steps"] == 6

    # an interrupted distillation (checkpoints, no distillation.json) resumes from its last checkpoint (kept here by
    # keep_checkpoints: an interrupted run keeps them anyway)
    (student / "distillation.json").unlink()
    (student / "fingerprint.json").rename(student / "fingerprint.pending.json")
    capsys.readouterr()
    assert main(args + ["--only", "xx-pos"]) == 0
    assert "distil tiny-student/xx: resumed from its last checkpoint" in capsys.readouterr().err

    # a student distilled by hand (no fingerprint.json) with these options is adopted, also when its record is
    # older than an option added since (here: alpha_value, at its default); with another option it is distilled
    # again
    (student / "fingerprint.json").unlink()
    made = json.loads((student / "distillation.json").read_text())
    older = {**made, "config": {k: v for k, v in made["config"].items() if k != "alpha_value"}}
    (student / "distillation.json").write_text(json.dumps(older), encoding="utf-8")
    assert main(args + ["--dry-run"]) == 0
    assert "distil tiny-student/xx: done already (distilled with these options; adopted)" in capsys.readouterr().err
    other = {**made, "config": {**made["config"], "alpha_value": 1.0}}
    (student / "distillation.json").write_text(json.dumps(other), encoding="utf-8")
    assert main(args + ["--dry-run"]) == 0
    assert "distil tiny-student/xx: to run: distil again (settings changed)" in capsys.readouterr().err


BILINGUAL = """
students:
  both:
    options: {teacher: "${teacher}", student_layers: 2, max_steps: 2, eval_steps: 2, batch_size: 8,
              gradient_accumulation: 1, max_length: 32, health_sentences: 0, cache_dir: "${data}/cache",
              language_weights: "xx=0.5,yy=0.5"}
    languages:
      xx+yy: {corpus: ["xx=${data}/corpus.txt", "yy=${data}/corpus-yy.txt"]}
defaults: {max_steps: 2, warmup_steps: 0, seeds: [1], batch_size: 8, progress: false}
models:
  - {name: teacher, model: "${teacher}"}
datasets:
  - {name: xx-pos, language: xx, task: pos, label: UPOS, train: "${data}/train.conllu", test: "${data}/test.conllu"}
  - {name: yy-pos, language: yy, task: pos, label: UPOS, train: "${data}/train.conllu", test: "${data}/test.conllu"}
"""


@pytest.mark.slow
def test_a_student_of_two_languages_is_fine_tuned_on_both(tiny_bert, corpus_file, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    lines = corpus_file.read_text(encoding="utf-8").splitlines()
    (data / "corpus.txt").write_text("\n".join(lines[:200]) + "\n", encoding="utf-8")
    (data / "corpus-yy.txt").write_text("\n".join(lines[200:]) + "\n", encoding="utf-8")
    write_conllu(data / "train.conllu", 30, seed=1)
    write_conllu(data / "test.conllu", 10, seed=2)
    exp = tmp_path / "exp.yaml"
    exp.write_text(BILINGUAL, encoding="utf-8")
    args = [
        "experiment",
        str(exp),
        "--out",
        str(tmp_path / "work"),
        "--results",
        str(tmp_path / "results"),
        "--var",
        f"data={data}",
        f"teacher={tiny_bert}",
    ]
    assert main(args) == 0
    record = json.loads((tmp_path / "work" / "students" / "both" / "xx+yy" / "distillation.json").read_text())
    assert sorted(record["languages"]) == ["xx", "yy"]
    rows = json.loads((tmp_path / "results" / "results.json").read_text())["rows"]
    assert sorted((r["model"], r["dataset"]) for r in rows if r["model"] == "both") == [
        ("both", "xx-pos"),
        ("both", "yy-pos"),
    ]

    # one language in two entries of one student: refused before anything runs
    exp.write_text(
        BILINGUAL.replace("xx+yy: {corpus", 'xx: {corpus: ["${data}/corpus.txt"]}\n      xx+yy: {corpus'),
        encoding="utf-8",
    )
    assert main(args + ["--out", str(tmp_path / "other")]) == 2


@pytest.mark.slow
def test_a_part_without_the_reference_runs_its_jobs_and_leaves_the_report(tiny_bert, corpus_file, tmp_path, capsys):
    """--only on the student alone (the teacher's jobs run elsewhere): its jobs run and exit 0; the report, which
    compares with the teacher, waits for a run that has the teacher's rows."""
    exp, out, results, args = _experiment(
        tmp_path, corpus_file, tiny_bert, EXPERIMENT.replace("seeds: [1, 2]", "seeds: [1]")
    )
    assert main(args + ["--only", "tiny-student"]) == 0
    err = capsys.readouterr().err
    assert "report: not written: the reference teacher has no results" in err and "Traceback" not in err
    assert not (results / "report.md").exists()
    assert [r["model"] for r in json.loads((out / "results.json").read_text())["rows"]] == ["tiny-student"]
    # a reference that is none of the models is named before anything runs (not as a report waiting for it)
    exp.write_text(EXPERIMENT.replace("reference: teacher", "reference: techer"), encoding="utf-8")
    assert main(args[:2] + ["--out", str(tmp_path / "typo")] + args[4:]) == 2
    err = capsys.readouterr().err
    assert "report: reference techer is not one of its models (teacher, tiny-student)" in err
    assert not (tmp_path / "typo").exists()
    exp.write_text(EXPERIMENT.replace("seeds: [1, 2]", "seeds: [1]"), encoding="utf-8")
    assert main(args + ["--only", "teacher"]) == 0  # the other part: now the report is written, with both
    rows = json.loads((results / "results.json").read_text())["rows"]
    assert sorted({r["model"] for r in rows}) == ["teacher", "tiny-student"] and (results / "report.md").is_file()


ABLATION = """
vars:
  data: /nonexistent
students:
  paper:
    options: &distil {teacher: "${teacher}", student_layers: 2, max_steps: 3, eval_steps: 3, batch_size: 8,
                      gradient_accumulation: 1, max_length: 32, health_sentences: 16, cache_dir: "${data}/cache"}
    languages: &xx
      xx: {corpus: ["${data}/corpus.txt"]}
  no-cos:
    options: {<<: *distil, alpha_cos: 0.0}
    languages: *xx
  t1:
    options: {<<: *distil, temperature: 1.0}
    languages: *xx
  longer:
    options: {<<: *distil, max_steps: 4, alpha_mlm: 0.0}
    languages: *xx
defaults: {max_steps: 3, warmup_steps: 0, seeds: [1], batch_size: 8, progress: false}
models:
  - {name: teacher, model: "${teacher}"}
datasets:
  - {name: xx-pos, language: xx, task: pos, label: UPOS, train: "${data}/train.conllu", test: "${data}/test.conllu"}
report: {reference: teacher}
"""


@pytest.mark.slow
def test_report_lays_out_loss_and_temperature_ablations(tiny_bert, corpus_file, tmp_path):
    """Tables 6 and 7: students alike but for their loss weights, or but for their temperature, get a table each,
    with the loss weights and temperature each was trained with, the difference to the paper's setting and the
    kept checkpoint's health; a student that differs in anything else (its steps) is in neither."""
    exp, out, results, args = _experiment(tmp_path, corpus_file, tiny_bert, ABLATION)
    assert main(args) == 0
    report = (results / "report.md").read_text()
    table6 = report.split("## Loss terms (Table 6): xx")[1].split("\n## ")[0]
    table7 = report.split("## Temperature of the soft targets (Table 7): xx")[1].split("\n## ")[0]
    rows6 = [line for line in table6.splitlines() if line.startswith("| ") and "---" not in line]
    rows7 = [line for line in table7.splitlines() if line.startswith("| ") and "---" not in line]
    assert "Δ vs 5·L_ce + 1·L_cos + 2·L_mlm" in rows6[0] and "CKA (validation)" in rows6[0]
    assert [r.split(" | ")[0] for r in rows6[1:]] == ["| paper", "| no-cos"]
    assert "| 5·L_ce + 1·L_cos + 2·L_mlm |" in rows6[1] and "| 5·L_ce + 2·L_mlm |" in rows6[2]
    assert rows6[1].split(" | ")[3] == "+0.0"  # the paper's row against itself
    assert "Δ vs T = 2" in rows7[0] and [r.split(" | ")[:2] for r in rows7[1:]] == [["| t1", "1"], ["| paper", "2"]]
    scores = {r["model"]: 100 * r["score"] for r in json.loads((results / "results.json").read_text())["rows"]}
    assert f"| {scores['t1'] - scores['paper']:+.1f} |" in rows7[1]
    cka = json.loads((out / "students" / "paper" / "xx" / "distillation.json").read_text())["validation"]
    assert f"{[v for v in cka if 'eval_cka' in v][-1]['eval_cka']:.3f}" in rows6[1]
    assert "longer" not in table6 + table7


def test_a_students_initialisation_is_written_once_and_fine_tuned_as_a_model(tiny_bert, corpus_file, tmp_path, capsys):
    from safetensors.torch import load_file
    from transformers import AutoModel

    text = EXPERIMENT.replace(
        "report: {reference: teacher}", "initialisations: {init: tiny-student}\nreport: {reference: teacher}"
    )
    exp, out, results, args = _experiment(tmp_path, corpus_file, tiny_bert, text)
    assert main(args + ["--only", "init"]) == 0  # the student it is made from is distilled first
    student, init = out / "students" / "tiny-student" / "xx", out / "initialisations" / "init" / "xx"
    record = json.loads((init / "initialisation.json").read_text())
    assert record["student"] == str(student) and record["teacher_layers_used"] == [1, 3]
    # the teacher's layers, untrained: the initialisation's weights are the teacher's, the student's moved on
    teacher = AutoModel.from_pretrained(tiny_bert).state_dict()
    weights = load_file(init / "model.safetensors")
    key = next(k for k in weights if k.endswith("encoder.layer.1.attention.self.query.weight"))
    assert torch.equal(weights[key], teacher["encoder.layer.2.attention.self.query.weight"])  # layer 3 of 4
    trained = load_file(student / "model.safetensors")[key]
    assert not torch.equal(trained, weights[key])
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["model"], r["dataset"], r["status"]) for r in rows] == [("init", "xx-pos", "ok")]

    capsys.readouterr()
    assert main(args) == 0  # the rest runs; the initialisation stays as written
    err = capsys.readouterr().err
    assert "initialise init/xx: done already (same student)" in err
    report = (results / "report.md").read_text()
    assert "init vs teacher" in report
    assert "initialise init/xx\tdone already" in (results / "stages.tsv").read_text()

    # the student distilled again: its initialisation is written again, and its fine-tunes rerun
    exp.write_text(text.replace("max_steps: 4", "max_steps: 6"), encoding="utf-8")
    assert main(args + ["--dry-run"]) == 0
    assert "initialise init/xx: to run: write it" in capsys.readouterr().err


def test_an_initialisation_of_no_student_is_refused_before_anything_runs(tiny_bert, corpus_file, tmp_path, capsys):
    text = EXPERIMENT.replace(
        "report: {reference: teacher}", "initialisations: {init: nobody}\nreport: {reference: teacher}"
    )
    _, out, _, args = _experiment(tmp_path, corpus_file, tiny_bert, text)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "initialisations.init: 'nobody' is not a student of this experiment; give one of tiny-student" in err
    assert not out.exists()


@pytest.mark.slow
def test_workers_distil_and_fine_tune_side_by_side(tiny_bert, corpus_file, tmp_path):
    """--workers 2: the two students are distilled in two processes and the jobs fine-tuned in two, each pinned to
    its share of the cores; the results are those of every job, the report written as with one worker."""
    second = EXPERIMENT.replace(
        "defaults:",
        "  other-student:\n"
        '    options: {teacher: "${teacher}", student_layers: 1, max_steps: 2, eval_steps: 2, batch_size: 8,\n'
        '              gradient_accumulation: 1, max_length: 32, health_sentences: 0, cache_dir: "${data}/cache"}\n'
        "    languages:\n"
        '      xx: {corpus: ["${data}/corpus.txt"]}\n'
        "defaults:",
    )
    exp, out, results, args = _experiment(tmp_path, corpus_file, tiny_bert, second)
    assert main(args + ["--workers", "2"]) == 0
    rows = json.loads((results / "results.json").read_text())["rows"]
    assert sorted((r["model"], r["dataset"], r["status"]) for r in rows) == [
        ("other-student", "xx-pos", "ok"),
        ("teacher", "xx-pos", "ok"),
        ("teacher", "yy-pos", "ok"),
        ("tiny-student", "xx-pos", "ok"),
    ]
    for name in ("tiny-student", "other-student"):
        assert (out / "students" / name / "xx" / "distillation.json").is_file()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = max(1, cores // min(2, cores))  # each worker's share of the cores
    assert all(f" with {threads} threads " in r["machine"] for r in rows)
    assert "other-student vs teacher" in (results / "report.md").read_text()


def test_workers_below_one_are_refused(tmp_path, capsys):
    assert main(["evaluate", "--suite", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert "--workers 0: give 1 (one job at a time) or more" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_pre_vr_students_size_is_against_the_teacher_as_given(tmp_path):
    """Table 5 compares a student with the teacher the user gave, not the vocabulary-reduced copy of it that a
    pre-distillation VocabReduce distils from."""
    from eliquare.config import DistillConfig
    from eliquare.experiment.report import student_rows
    from eliquare.experiment.students import Student

    record = {
        "teacher_parameters": 23_000_000,  # the reduced teacher
        "student_parameters": 12_000_000,
        "vocab_reduce": {"parameters": {"before": 117_000_000, "after": 23_000_000}, "vocab_size": {"after": 3865}},
        "inference": {"sequences_per_second": {"teacher": 10.0, "student": 21.0}},
        "validation": [{"eval_loss": 2.0, "eval_collapse": 0.3}],
        "best_validation_loss": 2.0,
    }
    (tmp_path / "distillation.json").write_text(json.dumps(record))
    config = DistillConfig(corpus=["c"], out=str(tmp_path), vocab_reduce="pre")
    (row,) = student_rows([Student("pre-vr", "xx", config)])
    assert row["parameters_ratio"] == round(12 / 117, 4) and row["speed_up"] == 2.1 and row["vocab_size"] == 3865
    assert row["health"] == {"collapse": 0.3}


POST_AND_FULL = """
vars:
  data: /nonexistent
students:
  basic:
    options: &recipe {teacher: "${teacher}", student_layers: 2, max_steps: 2, batch_size: 8, gradient_accumulation: 1,
                      max_length: 32, health_sentences: 0, cache_dir: "${data}/cache", vocab_reduce: none}
    languages:
      xx: {corpus: ["${data}/corpus.txt"]}
  post-vr:
    options: {<<: *recipe, vocab_reduce: post, vocab_min_fraction: 0.05}
    languages:
      xx: {corpus: ["${data}/corpus.txt"]}
defaults: {max_steps: 2, warmup_steps: 0, seeds: [1], batch_size: 8, progress: false}
models: []
datasets:
  - {name: xx-pos, language: xx, task: pos, label: UPOS, train: "${data}/train.conllu", test: "${data}/test.conllu"}
jobs:
  - {model: post-vr, dataset: xx-pos}
"""


def test_a_post_vr_student_is_its_full_vocabulary_twins_network_reduced(tiny_bert, corpus_file, tmp_path, capsys):
    """The post-VR student's distillation is the full-vocabulary student's: distilled once, reduced after."""
    exp, out, results, args = _experiment(tmp_path, corpus_file, tiny_bert, POST_AND_FULL)
    assert main(args[:2] + ["--dry-run"] + args[2:]) == 0
    err = capsys.readouterr().err
    assert "distil basic/xx: to run: distil" in err and "distil post-vr/xx: to run: reduce basic's" in err
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "distil basic/xx: distilled" in err and "distil post-vr/xx: reduced from basic's distilled network" in err
    post = out / "students" / "post-vr" / "xx"
    record = json.loads((post / "distillation.json").read_text())
    assert record["derived_from"]["student"] == str(out / "students" / "basic" / "xx")
    assert record["config"]["vocab_reduce"] == "post" and record["vocab_reduce"]["vocab_size"]["after"] < 300
    rows = json.loads((results / "results.json").read_text())["rows"]
    assert [(r["model"], r["status"]) for r in rows] == [("post-vr", "ok")]
    assert "| basic's, reduced |" in (results / "report.md").read_text()  # its distillation time is basic's
    assert main(args) == 0  # both found done: nothing is distilled or reduced again
    err = capsys.readouterr().err
    assert "distil basic/xx: done already" in err and "distil post-vr/xx: done already (same settings)" in err
