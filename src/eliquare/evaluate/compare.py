"""`eliquare compare A.json B.json`: Wilcoxon signed-rank test between two models' scores.

The test is paired. Pairs are matched by key:

- two ``metrics.json`` of `eliquare finetune` (the same dataset): one pair per seed both ran;
- ``results.json`` of `eliquare evaluate` (or a directory of several ``metrics.json``): one pair per
  (dataset, seed) both models ran, so that a whole suite (e.g. 12 tasks x 3 seeds) gives one test, as
  in the paper. When a results file holds several models, ``--model-a`` / ``--model-b`` choose them
  (the same file may be given twice).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Optional

from eliquare.config import CompareConfig
from eliquare.errors import EliquareError
from eliquare.evaluate.results import read_results, scored_on


def _score(value, path, model, dataset: str, seed) -> float:
    """A score as a number; NaN or infinity (a broken run) would make the test's p undefined."""
    x = float(value)
    if not math.isfinite(x):
        on = f" on {dataset}" if dataset else ""
        raise EliquareError(f"{path}: the score of {model}{on} with seed {seed} is {x}, not a number; rerun that job")
    return x


def load_scores(path: str | Path, model: Optional[str] = None) -> tuple[str, str, dict, dict]:
    """``(kind, model name, {key: score}, {dataset: what it scored})`` of a metrics.json (key: ``("", seed)``)
    or of a results table (key: ``(dataset, seed)``): a results.json, or a directory of several metrics.json.
    What a dataset's scores measure is ``results.scored_on``'s."""
    res = read_results(path)
    p = res.files[0] if len(res.files) == 1 else Path(path)
    if res.kind == "finetune" and len(res.rows) == 1:
        row = res.rows[0]
        spec = row["model_spec"]
        if model is not None and model not in (spec, Path(str(spec or "")).name):
            raise EliquareError(f"{p} holds results of model {spec!r}, not {model!r}")
        scores = {("", seed): _score(s, p, spec, "", seed) for seed, s in zip(row["seeds"] or [], row["scores"] or [])}
        return "finetune", str(p if spec is None else spec), scores, {"": scored_on(row, res.summaries[0])}
    rows = [r for r in res.rows if r.get("status") == "ok" and r.get("scores")]
    models = sorted({r["model"] for r in rows})
    if not rows:
        raise EliquareError(f"{p} holds no finished jobs to compare")
    if model is None:
        if len(models) > 1:
            raise EliquareError(
                f"{p} holds several models ({', '.join(models)}); choose one with --model-a / --model-b"
            )
        model = models[0]
    if model not in models:
        raise EliquareError(f"{p} holds no finished jobs of model {model!r} (models: {', '.join(models)})")
    scores, about = {}, {}
    summaries = dict(zip(map(id, res.rows), res.summaries))
    for r in rows:
        if r["model"] == model:
            for seed, s in zip(r["seeds"], r["scores"]):
                scores[(r["dataset"], seed)] = _score(s, p, model, r["dataset"], seed)
            about[r["dataset"]] = scored_on(r, summaries.get(id(r)))
    return "results", model, scores, about


def check_same_measure(cfg: CompareConfig, about_a: dict, about_b: dict, datasets) -> None:
    """Refuse to pair scores that measure different things: another task or metric (NER F1 against POS
    accuracy), other data files, another test set size."""
    for dataset in datasets:
        a, b = about_a[dataset], about_b[dataset]
        differ = [
            k
            for k in ("task", "metric", "files", "test_examples")
            if a[k] is not None and b[k] is not None and a[k] != b[k]
        ]
        if not differ:
            continue
        on = f" on dataset {dataset}" if dataset else ""

        def say(x: dict) -> str:
            files = ", ".join(f for f in x["files"] if f) if "files" in differ else ""
            return " ".join(
                filter(
                    None,
                    [
                        x["task"] if "task" in differ else "",
                        f"({x['metric']})" if "metric" in differ else "",
                        files,
                        f"{x['test_examples']} test examples" if "test_examples" in differ else "",
                    ],
                )
            )

        raise EliquareError(
            f"{cfg.a} and {cfg.b} do not score the same thing{on}: {say(a)} in A, {say(b)} in B; "
            "compare runs of the same task on the same dataset"
        )


def wilcoxon(a: list[float], b: list[float], alternative: str = "two-sided") -> dict:
    """Wilcoxon signed-rank test on paired scores (scipy), with the obvious degenerate cases handled."""
    from scipy.stats import wilcoxon as scipy_wilcoxon

    diffs = [x - y for x, y in zip(a, b)]
    n = len(diffs)
    nonzero = [d for d in diffs if d != 0]
    if not nonzero:  # all pairs tied: W is 0 under every sign pattern, so P(W <= 0) = 1
        statistic, p = 0.0, 1.0
    else:
        res = scipy_wilcoxon(a, b, alternative=alternative, zero_method="wilcox")
        statistic, p = float(res.statistic), float(res.pvalue)
    m = len(nonzero)
    # the smallest p-value the exact test can reach with m non-zero differences
    floor = (2.0 if alternative == "two-sided" else 1.0) / (2**m) if m else 1.0
    return {
        "n": n,
        "nonzero": m,
        "statistic": statistic,
        "p_value": p,
        "alternative": alternative,
        "min_p_value": min(1.0, floor),
        "mean_difference": statistics.fmean(diffs) if diffs else 0.0,
        "a_better": sum(d > 0 for d in diffs),
        "b_better": sum(d < 0 for d in diffs),
        "ties": sum(d == 0 for d in diffs),
    }


def compare(cfg: CompareConfig) -> dict:
    kind_a, name_a, sa, about_a = load_scores(cfg.a, cfg.model_a)
    kind_b, name_b, sb, about_b = load_scores(cfg.b, cfg.model_b)
    if kind_a != kind_b:
        raise EliquareError(
            "compare two metrics.json files (pairs by seed) or two results.json files (pairs by "
            "dataset and seed), not one of each"
        )
    keys = sorted(set(sa) & set(sb), key=lambda k: (str(k[0]), k[1]))
    if not keys:
        what = "seeds" if kind_a == "finetune" else "(dataset, seed) pairs"
        raise EliquareError(f"{cfg.a} and {cfg.b} share no {what}; run both with the same --seeds / suite")
    check_same_measure(cfg, about_a, about_b, sorted({k[0] for k in keys}))
    a = [sa[k] for k in keys]
    b = [sb[k] for k in keys]
    res = wilcoxon(a, b, cfg.alternative)
    res.update(
        {
            "a": str(cfg.a),
            "b": str(cfg.b),
            "model_a": name_a,
            "model_b": name_b,
            "pairs": [{"dataset": k[0], "seed": k[1], "a": x, "b": y} for k, x, y in zip(keys, a, b)],
        }
    )
    sig = "significant" if res["p_value"] < 0.05 else "not significant"
    print(
        f"A = {name_a} vs B = {name_b}: {res['n']} pairs, mean A - B = {100 * res['mean_difference']:+.2f} points; "
        f"A better on {res['a_better']}, B better on {res['b_better']}, tied on {res['ties']}"
    )
    tied = " (all pairs tied: nothing to rank, so p is 1)" if res["nonzero"] == 0 else ""
    print(
        f"Wilcoxon signed-rank ({cfg.alternative}): W = {res['statistic']:g}, p = {res['p_value']:.4g}{tied} "
        f"-> {sig} at 0.05"
    )
    if res["min_p_value"] >= 0.05:
        print(
            f"note: with {res['nonzero']} non-tied pairs p cannot fall below {res['min_p_value']:.3g}; more seeds "
            "or datasets are needed for significance at 0.05"
        )
    if cfg.out:
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.out).write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    return res
