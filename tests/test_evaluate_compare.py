"""`eliquare compare`: the Wilcoxon signed-rank test on paired scores, from metrics.json or results.json."""

from __future__ import annotations

import json

import pytest
from scipy.stats import wilcoxon as scipy_wilcoxon

from eliquare.cli import main
from eliquare.config import CompareConfig
from eliquare.errors import EliquareError
from eliquare.evaluate.compare import compare, wilcoxon


def _metrics(path, model, seeds, scores):
    path.write_text(
        json.dumps(
            {
                "kind": "finetune",
                "model": model,
                "task": "ner",
                "metric": "f1",
                "seeds": seeds,
                "scores": scores,
                "score": sum(scores) / len(scores),
            }
        )
    )
    return path


def test_wilcoxon_matches_scipy_and_degenerate_cases():
    b = [0.89, 0.86, 0.74, 0.85, 0.90, 0.69, 0.80]
    diffs = [0.010, 0.020, -0.031, 0.042, 0.053, 0.064, 0.075]  # distinct sizes: no tied ranks
    a = [x + d for x, d in zip(b, diffs)]
    res = wilcoxon(a, b)
    want = scipy_wilcoxon(a, b)
    assert res["p_value"] == pytest.approx(want.pvalue) and res["statistic"] == pytest.approx(want.statistic)
    assert (res["a_better"], res["b_better"], res["ties"], res["n"]) == (6, 1, 0, 7)
    assert res["mean_difference"] == pytest.approx(sum(diffs) / 7)
    # W = 3 (the one negative difference has rank 3). Of the 2^7 sign patterns, 5 give W <= 3
    # ({}, {1}, {2}, {3}, {1, 2}): exact one-sided p = 5/128, two-sided 10/128
    assert res["statistic"] == 3 and res["p_value"] == pytest.approx(10 / 128)
    assert wilcoxon(a, b, "greater")["p_value"] == pytest.approx(5 / 128)
    same = wilcoxon([0.5, 0.6], [0.5, 0.6])
    assert same["p_value"] == 1.0 and same["ties"] == 2
    assert wilcoxon([0.9, 0.8, 0.7], [0.1, 0.1, 0.1])["min_p_value"] == pytest.approx(0.25)


def test_compare_metrics_files_by_seed(tmp_path, capsys):
    a = _metrics(tmp_path / "a.json", "student", [1, 2, 3, 4, 5, 6], [0.80, 0.82, 0.81, 0.83, 0.80, 0.84])
    b = _metrics(tmp_path / "b.json", "teacher", [1, 2, 3, 4, 5, 6], [0.78, 0.80, 0.80, 0.80, 0.79, 0.81])
    out = tmp_path / "w.json"
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "A = student vs B = teacher: 6 pairs" in text and "Wilcoxon signed-rank (two-sided)" in text
    saved = json.loads(out.read_text())
    assert saved["p_value"] == pytest.approx(
        scipy_wilcoxon([0.80, 0.82, 0.81, 0.83, 0.80, 0.84], [0.78, 0.80, 0.80, 0.80, 0.79, 0.81]).pvalue
    )
    c = _metrics(tmp_path / "c.json", "other", [9], [0.5])
    with pytest.raises(EliquareError, match="share no seeds"):
        compare(CompareConfig(a=str(a), b=str(c)))


def test_compare_models_inside_one_results_file(tmp_path, capsys):
    rows = []
    for d, (x, y) in {
        "fr-pos": (0.95, 0.96),
        "sw-ner": (0.80, 0.84),
        "sl-ner": (0.70, 0.71),
        "he-pos": (0.90, 0.93),
        "hi-pos": (0.88, 0.90),
        "nl-ner": (0.85, 0.86),
    }.items():
        rows.append({"model": "student", "dataset": d, "status": "ok", "seeds": [1], "scores": [x], "score": x})
        rows.append({"model": "teacher", "dataset": d, "status": "ok", "seeds": [1], "scores": [y], "score": y})
    rows.append({"model": "teacher", "dataset": "xx", "status": "failed", "seeds": None, "scores": None})
    res_file = tmp_path / "results.json"
    res_file.write_text(json.dumps({"kind": "results", "rows": rows}))
    with pytest.raises(EliquareError, match="several models"):
        compare(CompareConfig(a=str(res_file), b=str(res_file)))
    res = compare(CompareConfig(a=str(tmp_path), b=str(res_file), model_a="student", model_b="teacher"))
    assert res["n"] == 6 and res["b_better"] == 6 and res["p_value"] == pytest.approx(2 / 64)
    assert "significant at 0.05" in capsys.readouterr().out
    with pytest.raises(EliquareError, match="not one of each"):
        compare(
            CompareConfig(a=str(res_file), b=str(_metrics(tmp_path / "m.json", "m", [1], [0.5])), model_a="student")
        )


def test_all_pairs_tied_writes_and_returns_p_1(tmp_path, capsys):
    a = _metrics(tmp_path / "a.json", "student", [1, 2, 3], [0.80, 0.82, 0.81])
    b = _metrics(tmp_path / "b.json", "teacher", [1, 2, 3], [0.80, 0.82, 0.81])
    out = tmp_path / "w.json"
    res = compare(CompareConfig(a=str(a), b=str(b), out=str(out)))
    saved = json.loads(out.read_text())
    assert res["p_value"] == saved["p_value"] == 1.0 and saved["ties"] == 3
    assert "all pairs tied: nothing to rank, so p is 1" in capsys.readouterr().out
    nan = tmp_path / "nan.json"
    nan.write_text(
        json.dumps({"kind": "finetune", "model": "m", "seeds": [1, 2, 3], "scores": [0.8, float("nan"), 0.81]})
    )
    with pytest.raises(EliquareError, match=r"nan.json: the score of m with seed 2 is nan, not a number"):
        compare(CompareConfig(a=str(nan), b=str(b)))


def test_scores_of_different_tasks_or_datasets_are_not_paired(tmp_path, capsys):
    """Guards against: NER F1 of one file against POS accuracy of another gave a p-value (exit 0)."""
    from oneline import assert_one_error

    seeds = [1, 2, 3, 4, 5, 6]

    def run(name, task, metric, train, scores, test_examples=60):
        path = tmp_path / f"{name}.json"
        path.write_text(
            json.dumps(
                {
                    "kind": "finetune",
                    "model": name,
                    "task": task,
                    "metric": metric,
                    "seeds": seeds,
                    "scores": scores,
                    "score": sum(scores) / 6,
                    "data": {"train": train, "dev": None, "test": None, "test_examples": test_examples},
                }
            )
        )
        return str(path)

    ner = run("ner", "ner", "f1", "/data/sw/ner/train.txt", [0.80, 0.82, 0.81, 0.83, 0.80, 0.84])
    pos = run("pos", "pos", "accuracy", "/data/sl/pos/sl_ssj-ud-train.conllu", [0.90, 0.91, 0.92, 0.93, 0.95, 0.96])
    code = main(["compare", ner, pos])
    assert_one_error(
        code,
        capsys.readouterr().err,
        "do not score the same thing: ner \\(f1\\) train.txt in A, pos "
        "\\(accuracy\\) sl_ssj-ud-train.conllu in B; compare runs of the same task on the same dataset",
    )
    other = run("other", "pos", "accuracy", "/data/he/pos/he_htb-ud-train.conllu", [0.90] * 6)
    with pytest.raises(EliquareError, match="he_htb-ud-train.conllu in A, sl_ssj-ud-train.conllu in B"):
        compare(CompareConfig(a=other, b=pos))
    smaller = run("smaller", "pos", "accuracy", "elsewhere/sl_ssj-ud-train.conllu", [0.90] * 6, test_examples=50)
    with pytest.raises(EliquareError, match="50 test examples in A, 60 test examples in B"):
        compare(CompareConfig(a=smaller, b=pos))
    same = run("same", "pos", "accuracy", "../shared/sl/pos/sl_ssj-ud-train.conllu", [0.89] * 6)  # another path
    assert compare(CompareConfig(a=same, b=pos))["n"] == 6

    rows = [
        {"model": m, "dataset": "sw", "task": t, "metric": k, "status": "ok", "seeds": [1, 2], "scores": [x, x]}
        for m, t, k, x in (("student", "ner", "f1", 0.8), ("teacher", "pos", "accuracy", 0.9))
    ]
    (tmp_path / "results.json").write_text(json.dumps({"kind": "results", "rows": rows}))
    with pytest.raises(EliquareError, match="on dataset sw: ner \\(f1\\) in A, pos \\(accuracy\\) in B"):
        compare(
            CompareConfig(
                a=str(tmp_path / "results.json"), b=str(tmp_path / "results.json"), model_a="student", model_b="teacher"
            )
        )
