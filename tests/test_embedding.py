"""Sentence-embedding students: the embedding objective's terms, the sentence-transformers format, the
teachers' layouts (e5, LaBSE, paraphrase-MiniLM, bge-m3 as tiny models), and the frozen-embedding tasks."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tiny
import torch

from eliquare.cli import main
from eliquare.distill.losses import LossWeights, sentence_loss, similarity_loss
from eliquare.embedding import (
    PromptCollator,
    SentencePooler,
    embedding_spec_for,
    encode,
    prompt_token_ids,
    save_sentence_transformers,
)
from eliquare.embedding_spec import E5_SPEC, EmbeddingSpec, read_embedding_spec
from eliquare.errors import EliquareError

sentence_transformers = pytest.importorskip("sentence_transformers")
FAST = ["--student-layers", "2", "--batch-size", "8", "--gradient-accumulation", "1", "--logging-steps", "5"]
TEXTS = ["Mtoto anasoma kitabu.", "Mama anapika chakula jikoni.", "Rais alihutubia bunge jana.", "Habari"]


# --- the terms, against a hand computation ----------------------------------------------------------------


def test_sentence_terms_match_a_hand_computation():
    s = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    t = torch.tensor([[1.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    cos = [1 / math.sqrt(2), 1.0, 0.0]
    assert sentence_loss(s, t).item() == pytest.approx(np.mean([1 - c for c in cos]))
    assert sentence_loss(s, t, "mse").item() == pytest.approx(((s - t) ** 2).mean().item())

    tau = 0.5

    def unit(v):
        return np.asarray(v) / np.linalg.norm(v, axis=1, keepdims=True)

    def kl_rows(sv, tv):
        total = 0.0
        for i in range(3):
            others = [j for j in range(3) if j != i]
            p = np.exp([tv[i] @ tv[j] / tau for j in others])
            p /= p.sum()
            q = np.exp([sv[i] @ sv[j] / tau for j in others])
            q /= q.sum()
            total += float((p * np.log(p / q)).sum())
        return total / 3

    expected = kl_rows(unit(s.numpy()), unit(t.numpy()))
    assert similarity_loss(s, t, tau).item() == pytest.approx(expected, rel=1e-5)
    assert similarity_loss(t, t, tau).item() == pytest.approx(0.0, abs=1e-6)  # the same similarities: nothing left
    # the weights: the sentence-level terms are summed with the token-level ones
    w = LossWeights(ce=0.0, cos=1.0, mlm=0.0, sentence=2.0, contrastive=3.0)
    parts = {"cos": torch.tensor(0.5), "sentence": torch.tensor(0.25), "contrastive": torch.tensor(0.1)}
    assert w.combine(parts).item() == pytest.approx(0.5 + 0.5 + 0.3)


def test_pooler_modes():
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 4.0], [9.0, 9.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert SentencePooler(EmbeddingSpec("mean", False))(hidden, mask).tolist() == [[2.0, 2.0]]
    assert SentencePooler(EmbeddingSpec("cls", False))(hidden, mask).tolist() == [[1.0, 0.0]]
    assert SentencePooler(EmbeddingSpec("max", False))(hidden, mask).tolist() == [[3.0, 4.0]]
    assert SentencePooler(EmbeddingSpec("lasttoken", False))(hidden, mask).tolist() == [[3.0, 4.0]]
    assert SentencePooler(EmbeddingSpec("lasttoken", True))(hidden, mask).tolist() == [
        [pytest.approx(0.6), pytest.approx(0.8)]
    ]


# --- teachers shaped like the hub's, built tiny ------------------------------------------------------------


def _dense_state(n: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"linear.weight": torch.randn(n, n, generator=g) * 0.3, "linear.bias": torch.randn(n, generator=g) * 0.1}


TEACHERS = {
    # intfloat/multilingual-e5-*: XLM-R, mean pooling, normalised, query/passage prompts
    "e5": ("xlmr", EmbeddingSpec("mean", True, {"query": "query: ", "passage": "passage: "})),
    # sentence-transformers/LaBSE: BERT, CLS pooling, a 768 -> 768 tanh Dense layer, normalised
    "labse": ("bert", "dense"),
    # sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2: XLM-R, mean pooling, not normalised
    "minilm": ("xlmr", EmbeddingSpec("mean", False)),
    # BAAI/bge-m3: XLM-R, CLS pooling, normalised
    "bge": ("xlmr", EmbeddingSpec("cls", True)),
}


def build_embedding_teacher(kind: str, root: Path) -> tuple[Path, EmbeddingSpec]:
    arch, spec = TEACHERS[kind]
    build = tiny.build_tiny_xlmr if arch == "xlmr" else tiny.build_tiny_bert
    path = build(root / kind, with_mlm_head=False)
    if spec == "dense":
        from eliquare.embedding_spec import DenseSpec

        spec = EmbeddingSpec("cls", True, dense=[DenseSpec(32, 32, True, "tanh", _dense_state(32))])
    save_sentence_transformers(path, spec, 32)
    return path, spec


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    root = tmp_path_factory.mktemp("st-teachers")
    return {kind: build_embedding_teacher(kind, root) for kind in TEACHERS}


@pytest.mark.parametrize("kind", list(TEACHERS))
def test_spec_round_trip_and_sentence_transformers_agrees(kind, teachers):
    from eliquare.models import load_model

    path, spec = teachers[kind]
    read = read_embedding_spec(path)
    assert (read.pooling, read.normalize, read.prompts, len(read.dense)) == (
        spec.pooling,
        spec.normalize,
        spec.prompts,
        len(spec.dense),
    )
    model = sentence_transformers.SentenceTransformer(str(path), device="cpu")
    loaded = load_model(str(path), head="base")
    prompt_name = "query" if spec.prompts else None
    ours = encode(loaded.model, loaded.tokenizer, read, TEXTS, spec.prompts.get("query", ""))
    theirs = model.encode(TEXTS, prompt_name=prompt_name, convert_to_numpy=True)
    assert np.abs(ours - theirs).max() < 1e-5


def test_reads_the_sentence_transformers_6_layout(tmp_path):
    """A model saved by sentence-transformers itself (its newest layout) reads as the classic one does."""
    from sentence_transformers import SentenceTransformer, models

    path = tiny.build_tiny_bert(tmp_path / "bert", with_mlm_head=False)
    t = models.Transformer(str(path))
    st = SentenceTransformer(
        modules=[t, models.Pooling(32, "cls"), models.Normalize()], prompts={"query": "q: "}, device="cpu"
    )
    st.save(str(tmp_path / "st"))
    spec = read_embedding_spec(tmp_path / "st")
    assert (spec.pooling, spec.normalize, spec.prompts["query"]) == ("cls", True, "q: ")


def test_unsupported_modules_get_one_line(tmp_path):
    path = tiny.build_tiny_bert(tmp_path / "m", with_mlm_head=False)
    save_sentence_transformers(path, E5_SPEC, 32)
    modules = json.loads((path / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_LayerNorm", "type": "sentence_transformers.models.LayerNorm"})
    (path / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(EliquareError, match="LayerNorm is not supported"):
        read_embedding_spec(path)
    (path / "modules.json").write_text("{not json")
    with pytest.raises(EliquareError, match="not readable JSON"):
        read_embedding_spec(path)


def test_hub_ids_fetch_only_the_sentence_transformers_files(teachers, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_snapshot(repo_id, allow_patterns=None, **kw):
        calls.append((repo_id, allow_patterns))
        return str(teachers["labse"][0])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    spec = embedding_spec_for("sentence-transformers/LaBSE", "sentence-transformers/LaBSE")
    assert calls[0][0] == "sentence-transformers/LaBSE" and "modules.json" in calls[0][1]
    assert not any(p.endswith(("safetensors", ".bin")) and "Dense" not in p for p in calls[0][1])
    assert spec.pooling == "cls" and len(spec.dense) == 1 and spec.dense[0].activation == "tanh"


def test_prompts_tokenise_as_a_prefix(tiny_xlmr, tiny_bert):
    from transformers import AutoTokenizer

    for path in (tiny_xlmr, tiny_bert):
        tok = AutoTokenizer.from_pretrained(path)
        for prompt in ("query: ", "passage: "):
            ids = prompt_token_ids(tok, prompt)
            for text in TEXTS:
                plain = tok(text)["input_ids"]
                assert tok(prompt + text)["input_ids"] == plain[:1] + ids + plain[1:]


def test_prompt_collator_gives_the_prompts_in_turn(tiny_xlmr, corpus_file):
    from transformers import AutoTokenizer

    from eliquare.distill.masking import collator_for

    tok = AutoTokenizer.from_pretrained(tiny_xlmr)
    spec = EmbeddingSpec("mean", True, {"query": "query: ", "passage": "passage: "}, include_prompt=False)
    masking = collator_for(tok, np.ones(len(tok), dtype=np.int64))
    collate = PromptCollator.for_tokenizer(masking, tok, spec, masked=True)
    rows = [{"input_ids": tok(t)["input_ids"]} for t in TEXTS[:2]]
    batch = collate(rows)
    q, p = prompt_token_ids(tok, "query: "), prompt_token_ids(tok, "passage: ")
    assert batch["input_ids"][0, 1 : 1 + len(q)].tolist() == q and batch["input_ids"][1, 1 : 1 + len(p)].tolist() == p
    assert batch["pool_mask"][0, 1 : 1 + len(q)].sum() == 0 and batch["pool_mask"][0, 0] == 1
    assert "masked_input_ids" in batch and (batch["labels"] != -100).any()
    with pytest.raises(EliquareError, match="not the teacher's"):
        spec.distillation_prompts(["title"])
    assert spec.distillation_prompts([""]) == [""]


# --- distillation ------------------------------------------------------------------------------------------


def _distil(teacher, corpus, out, tmp_path, *extra):
    code = main(
        [
            "distill",
            "--teacher",
            str(teacher),
            "--corpus",
            str(corpus),
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--max-steps",
            "4",
            "--eval-steps",
            "2",
            *FAST,
            *extra,
        ]
    )
    return code


@pytest.mark.parametrize("kind,reduce", [("e5", "pre"), ("labse", "post"), ("bge", "none")])
def test_embedding_student_loads_in_sentence_transformers(kind, reduce, teachers, corpus_file, tmp_path, capsys):
    from eliquare.models import load_model

    teacher, spec = teachers[kind]
    out = tmp_path / "student"
    assert _distil(teacher, corpus_file, out, tmp_path, "--objective", "auto", "--vocab-reduce", reduce) == 0
    err = capsys.readouterr().err
    assert "objective embedding" in err
    record = json.loads((out / "distillation.json").read_text())
    assert record["objective"] == "embedding" and record["embedding"]["pooling"] == spec.pooling
    assert set(record["loss_weights"]) == {"ce", "cos", "mlm", "sentence", "contrastive"}
    assert record["loss_weights"]["mlm"] == 0 and record["loss_weights"]["sentence"] == 1.0
    assert {"eval_sentence", "eval_contrastive", "eval_cos"} <= set(record["validation"][-1])
    assert json.loads((out / "config.json").read_text())["architectures"][0].endswith("Model")  # no MLM head
    model = sentence_transformers.SentenceTransformer(str(out), device="cpu", local_files_only=True)
    vectors = model.encode(TEXTS, prompt_name="query" if spec.prompts else None)
    assert vectors.shape == (len(TEXTS), 32)
    student = load_model(str(out), head="base")
    assert student.model.config.num_hidden_layers == 2
    ours = encode(student.model, student.tokenizer, read_embedding_spec(out), TEXTS, spec.prompts.get("query", ""))
    assert np.abs(ours - vectors).max() < 1e-5
    if spec.normalize:
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    if spec.dense:  # the student's dense layer was trained, not left as the teacher's
        from safetensors.torch import load_file

        trained = load_file(str(out / "2_Dense" / "model.safetensors"))
        assert not torch.equal(trained["linear.weight"], spec.dense[0].state["linear.weight"])
    if reduce != "none":
        assert len(student.tokenizer) < 300 and record["vocab_reduce"] is not None
    from eliquare.publish import published_files  # what --push-to-hub uploads: the sentence-transformers files too

    published = {str(p.relative_to(out)) for p in published_files(out)}
    assert {"modules.json", "config_sentence_transformers.json", "1_Pooling/config.json", "README.md"} <= published
    assert not any(p.endswith((".bin", ".pt", ".pth")) for p in published)


def test_masked_lm_stays_the_default_and_embedding_needs_no_st_files(
    teachers, tiny_bert_no_head, corpus_file, tmp_path, capsys
):
    out = tmp_path / "mlm"
    assert _distil(teachers["e5"][0], corpus_file, out, tmp_path) == 0
    record = json.loads((out / "distillation.json").read_text())
    assert record["objective"] == "masked-lm" and not (out / "modules.json").exists()
    assert record["loss_weights"] == {"ce": 0.0, "cos": 1.0, "mlm": 2.0}
    out2 = tmp_path / "plain"
    assert _distil(tiny_bert_no_head, corpus_file, out2, tmp_path, "--objective", "embedding", "--alpha-mlm", "1") == 0
    err = capsys.readouterr().err
    assert "no sentence-transformers configuration" in err
    record = json.loads((out2 / "distillation.json").read_text())
    assert record["loss_weights"]["mlm"] == 1.0 and "eval_mlm" in record["validation"][-1]
    assert read_embedding_spec(out2).pooling == "mean"


def test_embedding_objective_bad_input(teachers, corpus_file, tmp_path, capsys):
    teacher = teachers["e5"][0]
    out = tmp_path / "s"
    assert _distil(teacher, corpus_file, out, tmp_path, "--objective", "embedding", "--prompts", "title") == 2
    assert "not the teacher's" in capsys.readouterr().err and not out.exists()
    assert (
        _distil(
            teacher,
            corpus_file,
            out,
            tmp_path,
            "--objective",
            "embedding",
            "--alpha-sentence",
            "0",
            "--alpha-contrastive",
            "0",
            "--alpha-cos",
            "0",
        )
        == 2
    )
    assert "all loss weights are 0" in capsys.readouterr().err and not out.exists()
    assert _distil(teacher, corpus_file, out, tmp_path, "--contrastive-temperature", "0") == 2
    assert "contrastive_temperature must be positive" in capsys.readouterr().err


# --- frozen-embedding tasks --------------------------------------------------------------------------------


def test_retrieval_and_agreement_scores_by_hand():
    from eliquare.evaluate.embedding_tasks import agreement_scores, retrieval_scores

    q = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    d = np.array([[1.0, 0.1], [1.0, 0.0], [1.0, 1.0]])  # query 0 finds its doc second, query 1 third, query 2 first
    s = retrieval_scores(q, d, k=2)
    sims = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (d / np.linalg.norm(d, axis=1, keepdims=True)).T
    ranks = [1 + int((sims[i] > sims[i, i]).sum()) for i in range(3)]
    assert ranks == [2, 3, 1]
    assert s["recall_at_1"] == pytest.approx(1 / 3) and s["mrr_at_2"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert s["recall_at_2"] == pytest.approx(2 / 3)
    rng = np.random.default_rng(0)
    v = rng.normal(size=(30, 8))
    same = agreement_scores(v, v * 3.0)
    assert same["neighbours_at_10"] == 1.0 and same["spearman"] == pytest.approx(1.0)
    other = agreement_scores(v, rng.normal(size=(30, 8)))
    assert other["neighbours_at_10"] < 0.6
    with pytest.raises(EliquareError, match="more than 10 texts"):
        agreement_scores(v[:5], v[:5])


@pytest.fixture(scope="module")
def news_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("news")
    np.random.default_rng(1)
    sentences = tiny.synthetic_sentences(120, seed=3)
    rows = []
    for i, s in enumerate(sentences):
        label = ["sports", "politics"][i % 2]
        rows.append(f"{label}\t{' '.join(s.split()[:3])}\t{s} {sentences[(i + 7) % 120]}")
    files = {}
    for name, part in (("train", rows[:60]), ("dev", rows[60:90]), ("test", rows[90:])):
        files[name] = root / f"{name}.tsv"
        files[name].write_text("category\theadline\ttext\n" + "\n".join(part) + "\n")
    return files


def test_frozen_tasks_through_the_suite(teachers, news_files, tmp_path, capsys):
    from eliquare.evaluate.results import read_results

    teacher = teachers["e5"][0]
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"""
models:
  - {{name: teacher, model: "{teacher}"}}
datasets:
  - {{name: news-frozen, task: embed-classify, label: news (frozen), train: "{news_files["train"]}",
     dev: "{news_files["dev"]}", test: "{news_files["test"]}", label_column: category, text_column: [headline, text]}}
  - {{name: news-retrieval, task: retrieval, label: headline -> article, train: "{news_files["test"]}",
     query_column: headline, text_column: [text]}}
  - {{name: news-agreement, task: agreement, train: "{news_files["test"]}", text_column: [text],
     label_column: category, reference: "{teacher}"}}
""")
    out = tmp_path / "results"
    assert main(["evaluate", "--suite", str(suite), "--out", str(out)]) == 0, capsys.readouterr().err
    rows = {r["dataset"]: r for r in read_results(out).rows}
    assert rows["news-frozen"]["metric"] == "macro_f1" and 0 <= rows["news-frozen"]["score"] <= 1
    assert rows["news-retrieval"]["metric"] == "mrr_at_10" and rows["news-retrieval"]["test_examples"] == 30
    assert rows["news-agreement"]["score"] == 1.0  # a model agrees with itself
    assert rows["news-frozen"]["parameters"] > 0 and rows["news-frozen"]["examples_per_second"] > 0
    metrics = json.loads((out / "runs" / "teacher" / "news-retrieval" / "metrics.json").read_text())
    assert metrics["frozen"] and metrics["embedding"]["prompts"] == {"query": "query: ", "passage": "passage: "}
    # done jobs are skipped by fingerprint, as fine-tuning jobs are
    assert main(["evaluate", "--suite", str(suite), "--out", str(out)]) == 0
    assert "skipped (same settings)" in capsys.readouterr().err
    assert main(["report", str(out)]) == 0


def test_frozen_tasks_bad_input(teachers, news_files, tmp_path, capsys):
    teacher = str(teachers["e5"][0])
    base = ["finetune", "--model", teacher, "--train", str(news_files["test"])]
    assert main([*base, "--task", "retrieval", "--out", str(tmp_path / "r")]) == 2
    assert "needs --query-column" in capsys.readouterr().err and not (tmp_path / "r").exists()
    assert main([*base, "--task", "agreement", "--out", str(tmp_path / "a")]) == 2
    assert "needs --reference" in capsys.readouterr().err


def test_vocab_reduce_keeps_a_sentence_transformers_model_one(teachers, corpus_file, tmp_path, capsys):
    teacher, spec = teachers["labse"]
    out = tmp_path / "reduced"
    assert main(["vocab", "reduce", "--model", str(teacher), "--corpus", str(corpus_file), "--out", str(out)]) == 0
    model = sentence_transformers.SentenceTransformer(str(out), device="cpu")
    original = sentence_transformers.SentenceTransformer(str(teacher), device="cpu")
    assert len(model.tokenizer) < len(original.tokenizer)
    # sentences of the corpus keep all their tokens: the same embeddings (the Dense layer went along)
    kept = corpus_file.read_text().splitlines()[:8]
    assert np.abs(model.encode(kept) - original.encode(kept)).max() < 1e-5
