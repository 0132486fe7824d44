"""`eliquare report DIR`: the paper's tables and figures from a results directory.

- ``report.md``: Markdown tables laid out as Tables 4-7 of the paper: one row per model, one
  column per language and task (F1 x 100; mean ± standard deviation over seeds), then the model's
  size (parameters, MB) and speed (test tokens per second) when they were measured; one table
  over all languages, one per language, and the difference of every model to the reference row;
- ``figures/drop-vs-<reference>.png`` (and one per language): the drop in F1 of every model
  against the reference row, grouped by language and task, as Figures 4-5.

DIR is the output of `eliquare evaluate` (``results.json``) or any directory holding
``metrics.json`` files of `eliquare finetune`.
"""

from __future__ import annotations

import dataclasses
import re
import statistics
from pathlib import Path
from typing import Optional

from eliquare.config import PAPER_ALPHA_CE, PAPER_ALPHA_MLM, DistillConfig, ReportConfig
from eliquare.errors import EliquareError
from eliquare.evaluate.results import TASK_NAMES, read_results


def _column(row: dict) -> str:
    lang = row.get("language") or ""
    label = row.get("label") or TASK_NAMES.get(row.get("task", ""), row.get("task", ""))
    return f"{lang} {label}".strip() if lang else str(row.get("dataset"))


def _fmt(x: Optional[float], decimals: int) -> str:
    return "–" if x is None else f"{x:.{decimals}f}"


def _fmt_params(n: Optional[float]) -> str:
    if not n:
        return "–"
    m = n / 1e6
    return f"{m:.1f}" if m >= 10 else f"{m:.3g}"


def build_tables(rows: list[dict], reference: Optional[str] = None) -> dict:
    """Scores by model and column, the column order, and per-model size/speed."""
    models: list[str] = []
    columns: list[tuple[str, str]] = []  # (column title, language)
    cell: dict[tuple[str, str], dict] = {}
    for r in rows:
        if r["model"] not in models:
            models.append(r["model"])
        col = _column(r)
        if col not in [c for c, _ in columns]:
            columns.append((col, r.get("language") or ""))
        cell[(r["model"], col)] = r
    if reference is None:
        reference = models[0]
    elif reference not in models:
        raise EliquareError(f"--reference {reference}: no such model in the results (models: {', '.join(models)})")
    info = {}
    for m in models:
        mine = [r for r in rows if r["model"] == m and r.get("status") == "ok"]

        def mean(key):
            vals = [float(r[key]) for r in mine if r.get(key) not in (None, "")]
            return statistics.fmean(vals) if vals else None

        info[m] = {
            "params": mean("encoder_parameters") or mean("parameters"),
            "size_mb": mean("size_mb"),
            "tokens_per_second": mean("tokens_per_second"),
        }
    return {"models": models, "columns": columns, "cell": cell, "reference": reference, "info": info}


def _score(t: dict, model: str, col: str) -> Optional[float]:
    r = t["cell"].get((model, col))
    if not r or r.get("status") != "ok" or r.get("score") in (None, ""):
        return None
    return 100 * float(r["score"])


def _cell_text(t: dict, model: str, col: str, decimals: int) -> str:
    r = t["cell"].get((model, col))
    if r is None:
        return "–"
    if r.get("status") == "failed":
        return "failed"
    if r.get("status") != "ok":
        return "–"
    s = _fmt(100 * float(r["score"]), decimals)
    n = len(r.get("scores") or [])
    if n > 1 and r.get("std") not in (None, ""):
        s += f" ± {100 * float(r['std']):.{decimals}f}"
    return s


def markdown_table(t: dict, columns: list[str], decimals: int, extras: bool = True) -> str:
    models = t["models"]
    has_params = extras and any(t["info"][m]["params"] for m in models)
    has_size = extras and any(t["info"][m]["size_mb"] for m in models)
    has_speed = extras and any(t["info"][m]["tokens_per_second"] for m in models)
    head = ["Model"] + columns + (["Avg"] if len(columns) > 1 else [])
    if has_params:
        head.append("Params (M)")
    if has_size:
        head.append("Size (MB)")
    if has_speed:
        head += ["Speed (tok/s)", "Speed-up"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    ref_speed = t["info"][t["reference"]]["tokens_per_second"]
    for m in models:
        cells = [m] + [_cell_text(t, m, c, decimals) for c in columns]
        if len(columns) > 1:
            vals = [_score(t, m, c) for c in columns]
            scores = [v for v in vals if v is not None]
            cells.append(_fmt(statistics.fmean(scores), decimals) if len(scores) == len(vals) else "–")
        i = t["info"][m]
        if has_params:
            cells.append(_fmt_params(i["params"]))
        if has_size:
            cells.append(_fmt(i["size_mb"], 1))
        if has_speed:
            cells.append(_fmt(i["tokens_per_second"], 0))
            cells.append(f"{i['tokens_per_second'] / ref_speed:.2f}x" if i["tokens_per_second"] and ref_speed else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def drop_table(t: dict, columns: list[str], decimals: int) -> str:
    ref = t["reference"]
    others = [m for m in t["models"] if m != ref]
    lines = ["| Model | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for m in others:
        cells = []
        for c in columns:
            a, b = _score(t, ref, c), _score(t, m, c)
            cells.append("–" if a is None or b is None else f"{b - a:+.{decimals}f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# what an ablation row varies (Tables 6 and 7 of the paper) and the paper's own setting of it
LOSS_TERMS = ("ce", "cos", "mlm")
_DISTIL_DEFAULTS = {f.name: f.default for f in dataclasses.fields(DistillConfig)}
PAPER_LOSS_WEIGHTS = {"ce": PAPER_ALPHA_CE, "cos": _DISTIL_DEFAULTS["alpha_cos"], "mlm": PAPER_ALPHA_MLM}
PAPER_TEMPERATURE = _DISTIL_DEFAULTS["temperature"]
HEALTH_COLUMNS = (("collapse", "collapse"), ("cka", "CKA"), ("probe", "probe"))


def _weights_text(w: dict) -> str:
    terms = [f"{w[k]:g}·L_{k}" for k in LOSS_TERMS if w.get(k)]
    return " + ".join(terms) or "none"


def _ablation_groups(students: list[dict], varies: str) -> list[list[dict]]:
    """Students of one language alike in everything but ``varies`` ("loss" or "temperature"), two or more of
    them differing in it; a temperature group only where the soft-target term is on (T acts on it alone)."""
    groups: dict[tuple, list[dict]] = {}
    for s in students:
        weights = tuple(float(s["weights"].get(k) or 0) for k in LOSS_TERMS)
        if varies == "loss":
            key = (s["language"], s["rest"], s["temperature"])
        else:
            if not weights[0]:
                continue
            key = (s["language"], s["rest"], weights)
        groups.setdefault(key, []).append(s)
    out = []
    for group in groups.values():
        values = {tuple(sorted(s["weights"].items())) if varies == "loss" else s["temperature"] for s in group}
        if len(values) > 1:
            out.append(group if varies == "loss" else sorted(group, key=lambda s: s["temperature"]))
    return out


def ablation_tables(t: dict, students: list[dict], decimals: int) -> list[str]:
    """Markdown sections laid out as Tables 6 (loss terms) and 7 (temperature) of the paper.

    ``students``: one dict per distilled student of one language, read from its ``distillation.json``:
    ``name``, ``language``, ``weights`` (the loss weights it was trained with, ``{"ce", "cos", "mlm"}``),
    ``temperature``, ``rest`` (every other option, as one comparable string) and ``health`` (its kept
    checkpoint's validation collapse, CKA and probe score; absent ones are left out). A table appears for each
    set of two or more students alike in everything but the loss weights, or everything but the temperature:
    their scores on their language's datasets, the mean, the difference to the paper's setting where one of
    them has it (5·L_ce + 1·L_cos + 2·L_mlm, T = 2), and their health beside."""
    parts: list[str] = []
    for varies, title, paper in (
        ("loss", "Loss terms (Table 6)", "5·L_ce + 1·L_cos + 2·L_mlm"),
        ("temperature", "Temperature of the soft targets (Table 7)", "T = 2"),
    ):
        for group in _ablation_groups(students, varies):
            parts += _ablation_section(t, group, varies, title, paper, decimals)
    return parts


def _paper_setting(group: list[dict], varies: str) -> dict | None:
    """The student of ``group`` trained with the paper's value of what varies (its loss weights or its
    temperature), the baseline of the table's difference column; None when none is."""
    for s in group:
        if s["weights"] == PAPER_LOSS_WEIGHTS if varies == "loss" else s["temperature"] == PAPER_TEMPERATURE:
            return s
    return None


def _ablation_table(
    t: dict, group: list[dict], varies: str, paper: str, cols: list[str], health: list, decimals: int
) -> list[str]:
    """The markdown lines of one ablation table: a row per student with its setting, scores, their mean,
    the difference to the paper's setting (where a student has it) and its health."""
    base = _paper_setting(group, varies)
    head = ["Student", "loss" if varies == "loss" else "T"] + cols + (["Avg"] if len(cols) > 1 else [])
    head += [f"Δ vs {paper}"] if base else []
    head += [f"{h} (validation)" for _, h in health]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]

    def mean(name):
        vals = [_score(t, name, c) for c in cols]
        return statistics.fmean(vals) if all(v is not None for v in vals) else None

    for s in group:
        setting = _weights_text(s["weights"]) if varies == "loss" else f"{s['temperature']:g}"
        cells = [s["name"], setting] + [_cell_text(t, s["name"], c, decimals) for c in cols]
        if len(cols) > 1:
            cells.append(_fmt(mean(s["name"]), decimals))
        if base:
            a, b = mean(base["name"]), mean(s["name"])
            cells.append("–" if a is None or b is None else f"{b - a:+.{decimals}f}")
        cells += [_fmt(s["health"].get(k), 3) for k, _ in health]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _ablation_section(t: dict, group: list[dict], varies: str, title: str, paper: str, decimals: int) -> list[str]:
    """One ablation section (heading, caption, table) for a group of students alike but in what ``varies``;
    empty when none of them has a score on its language's columns."""
    language = group[0]["language"]
    cols = [c for c, lg in t["columns"] if lg == language]
    cols = [c for c in cols if any(_score(t, s["name"], c) is not None for s in group)]
    if not cols:
        return []
    health = [(k, h) for k, h in HEALTH_COLUMNS if any(s["health"].get(k) is not None for s in group)]
    lines = _ablation_table(t, group, varies, paper, cols, health, decimals)
    fixed = f"T = {group[0]['temperature']:g}" if varies == "loss" else f"loss {_weights_text(group[0]['weights'])}"
    return [
        f"## {title}: {language}",
        "",
        f"Students of one recipe, alike but for the {'loss weights' if varies == 'loss' else 'temperature'}"
        f" ({fixed}). Scores as above"
        + (", averaged over the columns" if len(cols) > 1 else "")
        + (
            "; health of the kept checkpoint on held-out corpus sentences (collapse: mean pairwise cosine"
            " of last-layer token states; CKA: linear CKA with the teacher; probe: frozen-state probe)"
            if health
            else ""
        )
        + ".",
        "",
        "\n".join(lines),
        "",
    ]


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-") or "model"


def drop_figure(t: dict, columns: list[str], path: Path, title: str) -> Optional[Path]:
    """Grouped bars: drop in F1 (reference minus model, points) per column, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = t["reference"]
    others = [m for m in t["models"] if m != ref]
    if not others or not columns:
        return None
    width = 0.8 / len(others)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(columns) + 2), 3.6), dpi=120)
    for k, m in enumerate(others):
        xs, ys = [], []
        for i, c in enumerate(columns):
            a, b = _score(t, ref, c), _score(t, m, c)
            if a is not None and b is not None:
                xs.append(i - 0.4 + width * (k + 0.5))
                ys.append(a - b)
        ax.bar(xs, ys, width=width, label=m)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels(columns, rotation=30 if len(columns) > 4 else 0, ha="right" if len(columns) > 4 else "center")
    ax.set_ylabel(f"drop in F1 vs {ref} (points)")
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def report(cfg: ReportConfig) -> dict:
    rows = read_results(cfg.dir).rows
    t = build_tables(rows, cfg.reference)
    src = Path(cfg.dir).expanduser()
    out = Path(cfg.out).expanduser() if cfg.out else (src if src.is_dir() else src.parent)
    out.mkdir(parents=True, exist_ok=True)
    d = cfg.decimals
    columns = [c for c, _ in t["columns"]]
    languages = []
    for _, lang in t["columns"]:
        if lang and lang not in languages:
            languages.append(lang)
    ref = t["reference"]
    parts = [
        "# Results",
        "",
        "Scores are F1 x 100 on the test split (POS: accuracy = micro-F1; NER: entity-level F1; "
        "classification: macro-F1), mean ± standard deviation over seeds where there are several. "
        f"Speed: test tokens per second; speed-up relative to {ref}.",
        "",
        "## All languages",
        "",
        markdown_table(t, columns, d),
        "",
    ]
    figures = []
    fig = drop_figure(t, columns, out / "figures" / f"drop-vs-{_slug(ref)}.png", f"Drop in F1 against {ref}")
    if fig:
        figures.append(fig)
        parts += [
            f"## Difference to {ref}",
            "",
            f"F1 points, model minus {ref} (negative: a drop).",
            "",
            drop_table(t, columns, d),
            "",
            f"![drop in F1 against {ref}]({fig.relative_to(out).as_posix()})",
            "",
        ]
    if len(languages) > 1:
        for lang in languages:
            cols = [c for c, lg in t["columns"] if lg == lang]
            parts += [f"## {lang}", "", markdown_table(t, cols, d), ""]
            fig = drop_figure(
                t,
                cols,
                out / "figures" / f"drop-vs-{_slug(ref)}-{_slug(lang)}.png",
                f"{lang}: drop in F1 against {ref}",
            )
            if fig:
                figures.append(fig)
                parts += [f"![{lang}: drop in F1 against {ref}]({fig.relative_to(out).as_posix()})", ""]
    failed = [r for r in rows if r.get("status") == "failed"]
    if failed:
        parts += ["## Failed jobs", ""] + [f"- {r['model']} on {r['dataset']}: {r.get('error', '')}" for r in failed]
        parts.append("")
    md = out / "report.md"
    md.write_text("\n".join(parts), encoding="utf-8")
    print(f"report in {md}" + (f", {len(figures)} figure(s) in {out / 'figures'}" if figures else ""))
    return {"report": str(md), "figures": [str(f) for f in figures]}
