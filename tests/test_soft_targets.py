"""Task distillation (eliquare.evaluate.soft_targets): the loss, word-level alignment across tokenizers, corpus
examples that leave dev and test text out, and a student fine-tuned on a teacher's soft targets end to end."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import tiny
import torch
from test_evaluate_finetune import write_conllu, write_place_time_tsv

from eliquare.cli import main
from eliquare.config import FinetuneConfig
from eliquare.errors import EliquareError
from eliquare.evaluate.finetune import finetune
from eliquare.evaluate.soft_targets import (
    SoftTargetCollator,
    attach,
    corpus_examples,
    soft_target_loss,
    teacher_logits,
)
from eliquare.models import load_tokenizer
from eliquare.tasks.encoding import encode
from eliquare.tasks.files import TaskData, TextExample, TokenExample


def test_loss_is_the_gold_cross_entropy_when_the_student_matches_the_teacher():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 3)
    labels = torch.tensor([[0, -100, 2, 1, -100], [-100, -100, -100, -100, -100]])
    mask = labels != -100
    mask[1, :2] = True  # a corpus sentence: soft targets, no gold labels
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 3), labels.reshape(-1), ignore_index=-100)
    same = soft_target_loss(logits, labels, logits.clone(), mask, weight=1.0, temperature=2.0)
    assert torch.allclose(same, ce, atol=1e-6)
    other = soft_target_loss(logits, labels, torch.randn(2, 5, 3), mask, weight=1.0, temperature=2.0)
    assert other > ce  # KL > 0 where the teacher disagrees
    only_soft = soft_target_loss(logits, torch.full_like(labels, -100), torch.randn(2, 5, 3), mask, 1.0, 2.0)
    assert torch.isfinite(only_soft) and only_soft > 0  # no gold label in the batch: the soft term alone


def test_corpus_examples_leave_dev_and_test_text_out(tmp_path):
    test_sentence = TokenExample(words=["Juma", "anasoma", "kitabu", "."], tags=["X"] * 4, source="t", line=1)
    data = TaskData(task="pos", train=[], dev=[], test=[test_sentence], labels=["X", "Y"], split="given")
    corpus = tmp_path / "c.txt"
    corpus.write_text("Juma anasoma kitabu.\nAmina anapika chakula kizuri.\nWatoto wanacheza mpira leo.\n")
    got = corpus_examples([str(corpus)], data, limit=10)
    assert [e.words for e in got] == [
        ["Amina", "anapika", "chakula", "kizuri", "."],
        list("Watoto wanacheza mpira leo".split()) + ["."],
    ]
    assert corpus_examples([str(corpus)], data, limit=1)[0].words[0] == "Amina"
    text = TaskData(
        task="classify",
        train=[TextExample(text="one two three four five six seven eight", label="a", source="t", line=1)] * 3,
        dev=[],
        test=[TextExample(text="Juma anasoma kitabu. Something else here.", label="a", source="t", line=1)],
        labels=["a", "b"],
        split="given",
    )
    passages = corpus_examples([str(corpus)], text, limit=5)
    assert passages and all("Juma" not in p.text for p in passages)
    assert all(len(p.text.split()) >= 8 for p in passages)  # about as long as the training texts


@pytest.fixture(scope="module")
def pos_teacher(tiny_bert, tmp_path_factory):
    """A tiny BERT fine-tuned on the synthetic tagging task, saved as `eliquare finetune --save-model` saves it."""
    d = tmp_path_factory.mktemp("soft-teacher")
    train = write_conllu(d / "train.conllu", 120, seed=1)
    test = write_conllu(d / "test.conllu", 30, seed=2)
    cfg = FinetuneConfig(
        model=str(tiny_bert), task="pos", train=str(train), test=str(test), out=str(d / "teacher"),
        epochs=4, learning_rate=3e-3, warmup_steps=4, batch_size=16, progress=False, seed=1,
    )  # fmt: skip
    summary = finetune(cfg)
    assert summary["score"] > 0.8
    return d, d / "teacher" / "model"


def test_word_distributions_line_up_across_tokenizers(pos_teacher, tiny_xlmr):
    """The teacher (WordPiece) labels words; the student (SentencePiece, other sub-words) gets one row per word,
    on the first sub-word of each, windows included."""
    _, teacher = pos_teacher
    labels = json.loads((teacher / "config.json").read_text())["id2label"]
    labels = [labels[str(i)] for i in range(len(labels))]
    rng = random.Random(0)
    words = [rng.choice(tiny.SUBJECTS + tiny.OBJECTS + tiny.PLACES) for _ in range(40)]
    examples = [TokenExample(words=words[:n], tags=[labels[0]] * n, source="c", line=1) for n in (3, 7, 40)]
    logits = teacher_logits(str(teacher), "pos", labels, examples, max_length=16, batch_size=2)
    assert [x.shape for x in logits] == [(3, len(labels)), (7, len(labels)), (40, len(labels))]
    student_tok = load_tokenizer(str(tiny_xlmr))
    label2id = {lab: i for i, lab in enumerate(labels)}
    feats, owners, _ = encode("pos", examples, student_tok, label2id, 12)  # the long one is windowed
    assert owners.count(2) > 1
    soft = attach("pos", feats, owners, logits, gold=False)
    rows = {i: [] for i in range(3)}
    for f, plain, o in zip(soft, feats, owners):
        assert all(lab == -100 for lab in f["labels"])  # corpus: no gold labels
        assert f["soft_mask"].sum() == sum(lab != -100 for lab in plain["labels"])
        rows[o].append(f["soft_logits"][f["soft_mask"]])
    for i, x in enumerate(logits):
        np.testing.assert_allclose(np.concatenate(rows[i]), x)
    batch = SoftTargetCollator(lambda fs: student_tok.pad(fs, return_tensors="pt"), "pos")(
        [{k: v for k, v in f.items() if k != "labels"} for f in soft[:2]]
    )
    assert batch["soft_logits"].shape[:2] == batch["input_ids"].shape and batch["soft_mask"].dtype == torch.bool


def test_a_student_learns_from_the_teachers_soft_targets(pos_teacher, tiny_bert, corpus_file, tmp_path):
    d, teacher = pos_teacher
    cfg = FinetuneConfig(
        model=str(tiny_bert), task="pos", train=str(d / "train.conllu"), test=str(d / "test.conllu"),
        out=str(tmp_path / "student"), epochs=4, learning_rate=3e-3, warmup_steps=4, batch_size=16,
        progress=False, seed=1, soft_teacher=str(teacher), soft_corpus=[str(corpus_file)], soft_examples=50,
        save_model=False,
    )  # fmt: skip
    summary = finetune(cfg)
    assert summary["score"] > 0.8, summary["runs"][0]["dev_history"]
    soft = json.loads((tmp_path / "student" / "metrics.json").read_text())["soft_targets"]
    assert soft["corpus_examples"] == 50 and soft["train_examples"] == summary["data"]["train_examples"]
    assert soft["teacher_train_accuracy"] > 0.8 and soft["temperature"] == 2.0


def test_a_teacher_of_other_labels_is_refused_in_one_line(pos_teacher, tiny_xlmr, tmp_path, capsys):
    rows = [("place" if i % 2 else "time", f"{tiny.SUBJECTS[i % 3]} {tiny.PLACES[i % 3]}") for i in range(30)]
    data = tmp_path / "d.tsv"
    data.write_text("label\ttext\n" + "".join(f"{a}\t{b}\n" for a, b in rows), encoding="utf-8")
    _, teacher = pos_teacher
    args = ["finetune", "--model", str(tiny_xlmr), "--task", "classify", "--train", str(data), "--out"]
    rc = main([*args, str(tmp_path / "o"), "--max-steps", "1", "--soft-teacher", str(teacher), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "was not fine-tuned on these labels" in err[-1]
    assert not (tmp_path / "o" / "metrics.json").exists()
    with pytest.raises(EliquareError, match="--soft-corpus needs --soft-teacher"):
        FinetuneConfig(model="m", task="pos", train=str(data), out="o", soft_corpus=["c.txt"])


def test_classification_with_soft_targets_from_cli(tiny_xlmr, corpus_file, tmp_path):
    data = write_place_time_tsv(tmp_path / "d.tsv", 40)
    base = ["finetune", "--model", str(tiny_xlmr), "--task", "classify", "--train", str(data), "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "t"), "--max-steps", "6", "--learning-rate", "1e-3"]) == 0
    rc = main(
        [*base, "--out", str(tmp_path / "s"), "--max-steps", "4", "--no-save-model", "--soft-teacher",
         str(tmp_path / "t" / "model"), "--soft-corpus", str(corpus_file), "--soft-examples", "20"]
    )  # fmt: skip
    assert rc == 0
    s = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert s["soft_targets"]["corpus_examples"] == 20 and s["labels"] == ["place", "time"]


def test_the_soft_targets_change_what_the_student_learns(pos_teacher, tiny_bert, tmp_path):
    """The teacher's logits reach the loss: the same seed and data with and without them end in other weights."""
    from safetensors.torch import load_file

    d, teacher = pos_teacher
    base = dict(
        model=str(tiny_bert), task="pos", train=str(d / "train.conllu"), test=str(d / "test.conllu"),
        max_steps=6, learning_rate=3e-3, warmup_steps=1, batch_size=16, progress=False, seed=1,
    )  # fmt: skip
    finetune(FinetuneConfig(**base, out=str(tmp_path / "plain")))
    finetune(FinetuneConfig(**base, out=str(tmp_path / "soft"), soft_teacher=str(teacher), soft_weight=5.0))
    plain = load_file(tmp_path / "plain" / "model" / "model.safetensors")
    soft = load_file(tmp_path / "soft" / "model" / "model.safetensors")
    assert plain.keys() == soft.keys()
    assert any(not torch.equal(plain[k], soft[k]) for k in plain)
