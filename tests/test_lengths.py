"""Inputs never longer than a model's position limit: --max-length is checked against the teacher and the student
before anything is written, --vocab-amp cuts the two tokenisations of a sentence to what the teacher takes, and the
other paths that build model inputs (the embedding objective's prompts, fine-tuning's task files, the health probes,
the model card's throughput) stay within the limit.

The tiny models here have 32 positions and a tokenizer that would allow 512 (as bert-base has 512 positions and its
tokenizer 512): an input longer than 32 tokens fails inside transformers' embeddings."""

from __future__ import annotations

import json

import pytest
import tiny
import torch
from transformers import AutoTokenizer

from eliquare.cli import main
from eliquare.models import length_limit, load_config
from eliquare.vocab.amp import CrossTokenisation

LIMIT = 32
LONG_WORDS = ["kiswahilimaridadi", "mwalimumkuu", "shuleyasekondari", "kitabuchakale"]


@pytest.fixture(scope="module")
def short_bert(tmp_path_factory):
    """A tiny BERT masked-LM whose 32 position embeddings are its limit (the tokenizer's would be 512)."""
    return tiny.build_tiny_bert(tmp_path_factory.mktemp("short-bert"), max_positions=LIMIT, model_max_length=512)


@pytest.fixture(scope="module")
def long_word_corpus(tmp_path_factory):
    """Sentences with four long words each: the tiny WordPiece vocabulary spells each in several pieces, VocabAmp
    gives it one, so that a sentence of at most 32 student tokens is longer than 32 in the teacher's pieces."""
    lines = [
        f"{s} {' '.join(LONG_WORDS[(i + k) % 4] for k in range(4))}"
        for i, s in enumerate(tiny.synthetic_sentences(300, seed=4))
    ]
    path = tmp_path_factory.mktemp("long-words") / "sl.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_tiny_models_limits(short_bert, tmp_path):
    assert length_limit(load_config(str(short_bert)), AutoTokenizer.from_pretrained(short_bert)) == LIMIT
    xlmr = tiny.build_tiny_xlmr(tmp_path / "x", max_positions=LIMIT + 2, model_max_length=512)
    # XLM-R's positions start after the padding index: 34 position embeddings take 32 tokens
    assert length_limit(load_config(str(xlmr)), AutoTokenizer.from_pretrained(xlmr)) == LIMIT


# --- --vocab-amp: two tokenisations, one limit -------------------------------------------------------------------


def _cross(limit=None):
    # old vocabulary 0..9 (0 pad, 1 mask, 2 [CLS], 3 [SEP]); new piece 10 = old 5 6, new piece 11 = old 7 8 9
    return CrossTokenisation(
        10, [[5, 6], [7, 8, 9]], mask_token_id=1, pad_token_id=0, limit=limit, special_ids=[0, 1, 2, 3]
    )


def test_fit_cuts_both_sides_alike_and_keeps_the_alignment_exact(capsys):
    cross = _cross(limit=6)
    # row 0 spells as 1 + 2 + 1 + 3 + 1 = 8 teacher tokens (over 6); row 1 as 3 (fits)
    ids = torch.tensor([[2, 1, 4, 1, 3], [2, 4, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    labels = torch.full_like(ids, -100)
    labels[0, 1], labels[0, 3] = 10, 11  # both new pieces masked
    cut_ids, cut_mask, cut_labels = cross.fit(ids, mask, labels)
    # the tokens whose spans fit (1 + 2 + 1 = 4, with [SEP] 5 <= 6) and the closing [SEP]; 11 (3 more) is dropped
    assert cut_ids.tolist() == [[2, 1, 4, 3], [2, 4, 3, 0]]
    assert cut_mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert cut_labels.tolist() == [[-100, 10, -100, -100], [-100, -100, -100, -100]]
    view = cross.teacher_batch(cut_ids, cut_mask, cut_labels)
    assert view["input_ids"].shape[1] <= 6
    assert view["input_ids"][0].tolist() == [2, 1, 1, 4, 3] and view["owner"][0].tolist() == [0, 1, 1, 2, 3]
    # exactly the view of the shortened sentence given as such: the cut changes nothing in what is kept
    alone = _cross().teacher_batch(cut_ids[:1], cut_mask[:1], cut_labels[:1])
    assert all(torch.equal(view[k][:1], alone[k]) for k in ("input_ids", "attention_mask", "labels", "owner"))
    hidden = torch.arange(2 * 5 * 2, dtype=torch.float).view(2, 5, 2)
    pooled = cross.pooled(hidden, view["owner"], cut_ids.shape)
    assert torch.equal(pooled[0, 1], hidden[0, 1:3].mean(0)) and torch.equal(pooled[0, 3], hidden[0, 4])
    err = capsys.readouterr().err
    assert err.count("notice:") == 1 and "1 of a batch's 2 sentences" in err and "limit of 6 tokens" in err
    cross.fit(ids, mask, labels)
    assert capsys.readouterr().err == ""  # once per run
    # a batch that fits is given back as it is
    fitting = (ids[1:], mask[1:], labels[1:])
    assert all(a is b for a, b in zip(cross.fit(*fitting), fitting))
    with pytest.raises(ValueError, match="not cut"):  # the teacher's view of an uncut batch is refused, not run
        cross.teacher_batch(ids, mask, labels)


def test_fit_without_a_closing_special_token_keeps_a_prefix():
    cross = _cross(limit=4)
    ids, mask = torch.tensor([[2, 10, 4, 11]]), torch.ones(1, 4, dtype=torch.long)
    cut = cross.fit(ids, mask, torch.full_like(ids, -100))
    assert cut[0].tolist() == [[2, 10, 4]]  # 1 + 2 + 1 teacher tokens


def test_distill_with_vocab_amp_on_a_teacher_with_few_positions(
    short_bert, long_word_corpus, tmp_path, capsys, monkeypatch
):
    """The reproduction of the fault: student sentences of at most --max-length tokens whose teacher spelling is
    longer than the teacher's 32 positions went to the teacher uncut (a traceback from its embeddings)."""
    tok = AutoTokenizer.from_pretrained(short_bert)
    longest = max(len(ids) for ids in tok(long_word_corpus.read_text().splitlines())["input_ids"])
    assert longest > LIMIT  # in the teacher's pieces the sentences do not fit
    widths = []
    view = CrossTokenisation.teacher_batch

    def recorded(self, *args):
        out = view(self, *args)
        widths.append(out["input_ids"].shape[1])
        return out

    monkeypatch.setattr(CrossTokenisation, "teacher_batch", recorded)
    out = tmp_path / "amp"
    code = main(
        [
            "distill",
            "--teacher",
            str(short_bert),
            "--corpus",
            str(long_word_corpus),
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "c"),
            "--max-steps",
            "4",
            "--batch-size",
            "8",
            "--gradient-accumulation",
            "1",
            "--eval-steps",
            "2",
            "--student-layers",
            "2",
            "--vocab-amp",
            "500",
            "--vocab-amp-trained-size",
            "300",
            "--max-length",
            str(LIMIT),
            "--health-sentences",
            "8",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert widths and LIMIT - 8 < max(widths) <= LIMIT  # cut to what fits, not far below it
    assert err.count("once spelled in its own pieces") == 1 and f"teacher's limit of {LIMIT} tokens" in err
    record = json.loads((out / "distillation.json").read_text())
    assert record["vocab_amp"]["added"] >= 1 and "eval_cos" in record["validation"][-1]
    assert record["inference"]["length"] == LIMIT  # the model card's throughput, on inputs the models take


@pytest.mark.parametrize("arch", ["bert", "xlmr"])
def test_max_length_above_the_teachers_limit_is_one_line_before_anything_is_written(
    arch, short_bert, long_word_corpus, tmp_path, capsys
):
    teacher = (
        short_bert
        if arch == "bert"
        else tiny.build_tiny_xlmr(tmp_path / "x", max_positions=LIMIT + 2, model_max_length=512)
    )
    out = tmp_path / "s"
    code = main(
        [
            "distill",
            "--teacher",
            str(teacher),
            "--corpus",
            str(long_word_corpus),
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "c"),
            "--max-steps",
            "2",
            "--student-layers",
            "2",
            *(["--vocab-amp", "5"] if arch == "bert" else []),
            "--max-length",
            str(LIMIT + 1),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert f"--max-length {LIMIT + 1} is above the {LIMIT} tokens that teacher" in err
    assert f"give --max-length {LIMIT} or less" in err
    assert not out.exists() and not (tmp_path / "c").exists() and not (tmp_path / "s.checkpoints").exists()


# --- the embedding objective: a prompt on top of --max-length tokens ---------------------------------------------


@pytest.fixture(scope="module")
def short_e5(tmp_path_factory):
    """An e5-like embedding teacher (mean pooling, query/passage prompts) with 16 positions."""
    from eliquare.embedding import save_sentence_transformers
    from eliquare.embedding_spec import EmbeddingSpec

    path = tiny.build_tiny_bert(
        tmp_path_factory.mktemp("short-e5"), with_mlm_head=False, max_positions=16, model_max_length=512
    )
    save_sentence_transformers(path, EmbeddingSpec("mean", True, {"query": "query: ", "passage": "passage: "}), 32)
    return path


def test_prompt_collator_cuts_prompted_sentences_to_the_limit(short_e5, capsys):
    import numpy as np

    from eliquare.distill.masking import collator_for
    from eliquare.embedding import PromptCollator, prompt_token_ids
    from eliquare.embedding_spec import EmbeddingSpec
    from eliquare.errors import EliquareError

    tok = AutoTokenizer.from_pretrained(short_e5)
    spec = EmbeddingSpec("mean", True, {"query": "query: ", "passage": "passage: "}, include_prompt=False)
    masking = collator_for(tok, np.ones(len(tok), dtype=np.int64))
    collate = PromptCollator.for_tokenizer(masking, tok, spec, masked=True, max_length=16)
    q, p = prompt_token_ids(tok, "query: "), prompt_token_ids(tok, "passage: ")
    long = tok(" ".join(tiny.synthetic_sentences(3, seed=1)), truncation=True, max_length=16)["input_ids"]
    short = tok("mama")["input_ids"]
    batch = collate([{"input_ids": long}, {"input_ids": short}])
    assert batch["input_ids"].shape[1] == 16 and batch["masked_input_ids"].shape[1] == 16
    row = batch["input_ids"][0].tolist()
    assert row == long[:1] + q + long[1 : 16 - 1 - len(q)] + long[-1:]  # the text cut at its end, [SEP] kept
    assert batch["input_ids"][1, : len(short) + len(p)].tolist() == short[:1] + p + short[1:]  # uncut
    assert batch["pool_mask"][0, 1 : 1 + len(q)].sum() == 0 and batch["pool_mask"][0, 1 + len(q) :].all()
    err = capsys.readouterr().err
    assert err.count("notice:") == 1 and "1 of a batch's 2 sentences" in err and "limit of 16 tokens" in err
    collate([{"input_ids": long}, {"input_ids": short}])
    assert capsys.readouterr().err == ""  # once per run
    with pytest.raises(EliquareError, match="leaves no text within its limit of 4 tokens"):
        PromptCollator.for_tokenizer(masking, tok, spec, max_length=4)


def test_distill_embedding_objective_at_the_teachers_limit(short_e5, corpus_file, tmp_path, capsys):
    """--max-length at the teacher's limit is accepted: the prompt on top of it is cut from the text's end (a
    sentence longer than the limit once prompted failed in the teacher's embeddings)."""
    from eliquare.embedding import prompt_token_ids

    tok = AutoTokenizer.from_pretrained(short_e5)
    prompt = max(len(prompt_token_ids(tok, p)) for p in ("query: ", "passage: "))
    assert max(len(ids) for ids in tok(corpus_file.read_text().splitlines()[:200])["input_ids"]) + prompt > 16
    out = tmp_path / "e"
    code = main(
        [
            "distill",
            "--teacher",
            str(short_e5),
            "--corpus",
            str(corpus_file),
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "c"),
            "--max-steps",
            "2",
            "--eval-steps",
            "2",
            "--student-layers",
            "2",
            "--batch-size",
            "8",
            "--gradient-accumulation",
            "1",
            "--health-sentences",
            "0",
            "--objective",
            "embedding",
            "--max-length",
            "16",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert err.count("once prompted") == 1
    record = json.loads((out / "distillation.json").read_text())
    assert record["objective"] == "embedding" and record["inference"]["length"] == 16
    code = main(
        [
            "distill",
            "--teacher",
            str(short_e5),
            "--corpus",
            str(corpus_file),
            "--out",
            str(tmp_path / "f"),
            "--objective",
            "embedding",
            "--max-length",
            "17",
        ]
    )
    assert code == 2 and "give --max-length 16 or less" in capsys.readouterr().err


# --- fine-tuning's task files: already cut to the model's limit --------------------------------------------------


def _long_tagged(path, n: int = 12, words: int = 50):
    """A CoNLL-U file of sentences of ``words`` words, each several sub-words: far beyond 32 tokens."""
    vocabulary = tiny.SUBJECTS + tiny.VERBS + tiny.OBJECTS
    with path.open("w", encoding="utf-8") as f:
        for s in range(n):
            for i in range(1, words + 1):
                w = vocabulary[(s * 7 + i) % len(vocabulary)]
                f.write(f"{i}\t{w}\t{w}\t{'NOUN' if i % 2 else 'VERB'}\t_\t_\t0\t_\t_\t_\n")
            f.write("\n")
    return path


@pytest.mark.parametrize("task", ["pos", "classify"])
def test_finetune_keeps_task_inputs_within_the_limit(task, short_bert, tmp_path, capsys):
    """A --max-length above the model's limit is lowered to it (a notice); long sentences are cut into windows and
    long texts truncated to it: fine-tuning runs on a model of 32 positions."""
    from eliquare.config import FinetuneConfig
    from eliquare.evaluate.finetune import finetune

    if task == "pos":
        data = _long_tagged(tmp_path / "long.conllu")
    else:
        data = tmp_path / "long.tsv"
        rows = [(("a", "b")[i % 2], " ".join(tiny.synthetic_sentences(12, seed=i))) for i in range(20)]
        data.write_text("label\ttext\n" + "".join(f"{a}\t{b}\n" for a, b in rows), encoding="utf-8")
    cfg = FinetuneConfig(
        model=str(short_bert),
        task=task,
        train=str(data),
        out=str(tmp_path / "o"),
        max_steps=2,
        batch_size=4,
        warmup_steps=0,
        max_length=64,
        progress=False,
        cache_encodings=False,
        use_cpu=True,
    )
    summary = finetune(cfg)
    err = capsys.readouterr().err
    assert summary["max_length"] == LIMIT and f"above the model's limit of {LIMIT} tokens; using {LIMIT}" in err
    assert ("cut into windows" if task == "pos" else "were truncated") in err


# --- health: probes and samples -----------------------------------------------------------------------------------


def test_probe_windows_long_sentences_to_the_limit(short_bert, tmp_path):
    """ProbeSet (distill's --probe, `eliquare health --probe`) is encoded with fine-tuning's windows: with
    --max-length within the limit, which distill and health check, every input fits."""
    from eliquare.distill.health import ProbeSet
    from eliquare.models import load_model

    tok = AutoTokenizer.from_pretrained(short_bert)
    probe = ProbeSet.from_file(str(_long_tagged(tmp_path / "p.conllu", n=20)), tok, "pos", max_length=LIMIT)
    assert LIMIT - 4 < probe.train[0].shape[1] <= LIMIT and probe.test[0].shape[1] <= LIMIT  # windows of <= 32
    assert 0.0 <= probe.score(load_model(str(short_bert), head="base").model) <= 1.0


def test_health_refuses_a_max_length_above_the_models_limit(short_bert, tmp_path, capsys):
    texts = _long_tagged(tmp_path / "t.conllu")
    out, init = tmp_path / "h.json", tmp_path / "init"
    code = main(
        [
            "health",
            "--models",
            str(short_bert),
            "--teacher",
            str(short_bert),
            "--texts",
            str(texts),
            "--probe",
            str(texts),
            "--max-length",
            "64",
            "--out",
            str(out),
            "--save-initialisation",
            str(init),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"--max-length 64 is above the {LIMIT} tokens that model {short_bert}" in err
    assert not out.exists() and not init.exists()
