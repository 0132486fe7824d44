"""`eliquare report`: Markdown tables as Tables 4-7 of the paper and drop-in-F1 figures as Figures 4-5."""

from __future__ import annotations

import json

import pytest

from eliquare.cli import main
from eliquare.config import ReportConfig
from eliquare.errors import EliquareError
from eliquare.evaluate.report import report

PNG = b"\x89PNG\r\n\x1a\n"


def _row(model, dataset, language, task, label, scores, params, tps, status="ok"):
    mean = sum(scores) / len(scores) if scores else None
    std = (sum((s - mean) ** 2 for s in scores) / (len(scores) - 1)) ** 0.5 if len(scores) > 1 else 0.0
    return {
        "model": model,
        "model_spec": model,
        "dataset": dataset,
        "language": language,
        "task": task,
        "label": label,
        "metric": "f1",
        "score": mean,
        "std": std,
        "seeds": list(range(1, len(scores) + 1)),
        "scores": scores,
        "parameters": params,
        "encoder_parameters": params,
        "size_mb": params * 4 / 1e6,
        "examples_per_second": 10.0,
        "tokens_per_second": tps,
        "status": status,
        "error": "",
    }


def _results(tmp_path):
    rows = [
        _row("teacher", "sw-news", "sw", "classify", "news topic", [0.80, 0.82], 117_000_000, 1000.0),
        _row("teacher", "sw-ner", "sw", "ner", "NER", [0.85, 0.87], 117_000_000, 1000.0),
        _row("teacher", "sl-pos", "sl", "pos", "UPOS", [0.97, 0.97], 117_000_000, 1000.0),
        _row("student", "sw-news", "sw", "classify", "news topic", [0.78, 0.78], 40_000_000, 2500.0),
        _row("student", "sw-ner", "sw", "ner", "NER", [0.80, 0.82], 40_000_000, 2500.0),
        {
            **_row("student", "sl-pos", "sl", "pos", "UPOS", [], 40_000_000, None, status="failed"),
            "error": "boom",
            "score": None,
        },
    ]
    (tmp_path / "results.json").write_text(json.dumps({"kind": "results", "rows": rows}))
    return tmp_path


def test_report_tables_and_figures(tmp_path, capsys):
    d = _results(tmp_path)
    assert main(["report", str(d)]) == 0
    md = (d / "report.md").read_text(encoding="utf-8")
    head = "| Model | sw news topic | sw NER | sl UPOS | Avg | Params (M) | Size (MB) | Speed (tok/s) | Speed-up |"
    assert head in md
    assert "| teacher | 81.0 ± 1.4 | 86.0 ± 1.4 | 97.0 ± 0.0 | 88.0 | 117.0 | 468.0 | 1000 | 1.00x |" in md
    assert "| student | 78.0 ± 0.0 | 81.0 ± 1.4 | failed | – | 40.0 | 160.0 | 2500 | 2.50x |" in md
    assert "| student | -3.0 | -5.0 | – |" in md  # difference to the reference row (the first model)
    assert "## sw" in md and "## sl" in md and "- student on sl-pos: boom" in md
    for name in ("drop-vs-teacher.png", "drop-vs-teacher-sw.png", "drop-vs-teacher-sl.png"):
        png = d / "figures" / name
        assert png.read_bytes()[:8] == PNG and f"(figures/{name})" in md


def test_report_reference_and_finetune_dirs(tmp_path):
    d = _results(tmp_path)
    out = tmp_path / "rep"
    report(ReportConfig(dir=str(d / "results.json"), out=str(out), reference="student", decimals=2))
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| teacher | +3.00 | +5.00 | – |" in md and (out / "figures" / "drop-vs-student.png").is_file()
    with pytest.raises(EliquareError, match="no such model"):
        report(ReportConfig(dir=str(d), reference="nobody"))
    # a directory of `eliquare finetune` outputs: model/dataset/metrics.json
    runs = tmp_path / "runs"
    for model, score in (("a", 0.9), ("b", 0.8)):
        p = runs / model / "sw-ner"
        p.mkdir(parents=True)
        (p / "metrics.json").write_text(
            json.dumps(
                {
                    "kind": "finetune",
                    "model": model,
                    "task": "ner",
                    "metric": "f1",
                    "score": score,
                    "std": 0.0,
                    "seeds": [1],
                    "scores": [score],
                    "parameters": 1000,
                }
            )
        )
        (p / "seed-1").mkdir()
        (p / "seed-1" / "metrics.json").write_text(json.dumps({"seed": 1, "score": score}))  # a run: ignored
    report(ReportConfig(dir=str(runs)))
    md = (runs / "report.md").read_text(encoding="utf-8")
    assert "| a | 90.0 | 0.001 |" in md and "| b | 80.0 | 0.001 |" in md
    with pytest.raises(EliquareError, match="holds no results"):
        report(ReportConfig(dir=str(tmp_path / "rep" / "figures")))


def test_ablation_tables_only_where_students_differ_in_one_thing():
    """A loss table needs two students alike but for their weights; a temperature table two alike but for T, and
    the soft-target term on (T acts on nothing else); the two-task mean and its difference to the paper's row."""
    from eliquare.evaluate.report import ablation_tables, build_tables

    rows = [
        _row(m, d, "sw", t, lab, [s], 1e7, 1.0)
        for m, s0 in (("paper", 0.80), ("no-mlm", 0.70), ("t4", 0.76), ("headless", 0.60), ("headless-t4", 0.61))
        for (d, t, lab), s in ((("sw-news", "classify", "news topic"), s0), (("sw-ner", "ner", "NER"), s0 + 0.1))
    ]
    t = build_tables(rows, "paper")

    def student(name, ce=5.0, mlm=2.0, temperature=2.0, rest="a"):
        return {
            "name": name,
            "language": "sw",
            "weights": {"ce": ce, "cos": 1.0, "mlm": mlm},
            "temperature": temperature,
            "rest": rest,
            "health": {"cka": 0.9} if name == "paper" else {},
        }

    assert ablation_tables(t, [student("paper")], 1) == []
    assert ablation_tables(t, [student("paper"), student("no-mlm", mlm=0.0, rest="b")], 1) == []
    md = "\n".join(
        ablation_tables(
            t,
            [
                student("paper"),
                student("no-mlm", mlm=0.0),
                student("t4", temperature=4.0),
                student("headless", ce=0.0),
                student("headless-t4", ce=0.0, temperature=4.0),
            ],
            1,
        )
    )
    assert (
        md.count("## Loss terms (Table 6): sw") == 2
    )  # at T = 2 (paper, no-mlm, headless) and at T = 4 (t4, headless-t4)
    assert md.count("## Temperature of the soft targets (Table 7): sw") == 1  # headless and headless-t4: CE off
    assert "| no-mlm | 5·L_ce + 1·L_cos | 70.0 | 80.0 | 75.0 | -10.0 | – |" in md
    assert "| paper | 5·L_ce + 1·L_cos + 2·L_mlm | 80.0 | 90.0 | 85.0 | +0.0 | 0.900 |" in md
    assert "| t4 | 4 | 76.0 | 86.0 | 81.0 | -4.0 |" in md and "| headless-t4 | 4 |" not in md
