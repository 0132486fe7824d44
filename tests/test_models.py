"""eliquare.models, the one place that loads models: a model without its own tokenizer is refused, not used."""

from __future__ import annotations

import json
import shutil

import pytest
from oneline import assert_one_error

from eliquare.cli import main
from eliquare.errors import EliquareError
from eliquare.models import TOKENIZER_FILES, load_model, load_tokenizer


@pytest.fixture
def no_tokenizer(tiny_bert, tmp_path):
    """The tiny BERT's config and weights, without its tokenizer files."""
    model = tmp_path / "no-tokenizer"
    model.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_bert / name, model / name)
    assert not any((model / name).exists() for name in TOKENIZER_FILES)
    return model


def test_a_model_directory_without_tokenizer_files_is_refused(no_tokenizer):
    with pytest.raises(
        EliquareError,
        match=f"model directory {no_tokenizer} has no tokenizer files .*; save the model's tokenizer beside it",
    ):
        load_tokenizer(str(no_tokenizer))
    with pytest.raises(EliquareError, match="has no tokenizer files"):
        load_model(str(no_tokenizer))


def test_a_tokenizer_far_smaller_than_the_embeddings_is_refused(tiny_bert, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_bert, other)
    config = json.loads((other / "config.json").read_text())
    config["vocab_size"] = 250_002
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        EliquareError, match="tokens but the model has 250,002 embedding rows: it is not the model's own tokenizer"
    ):
        load_tokenizer(str(other))
    assert len(load_tokenizer(str(tiny_bert))) == json.loads((tiny_bert / "config.json").read_text())["vocab_size"]


@pytest.mark.parametrize("verb", ["finetune", "vocab reduce", "distill"])
def test_no_silent_garbage_from_a_model_without_its_tokenizer(verb, no_tokenizer, corpus_file, tmp_path, capsys):
    """Guards against: finetune scored 0.00 and vocab reduce cut the embeddings to 5 rows, both with exit 0."""
    train = tmp_path / "train.conllu"
    train.write_text("1\tmtoto\tmtoto\tNOUN\t_\t_\t0\t_\t_\t_\n2\tanasoma\tanasoma\tVERB\t_\t_\t0\t_\t_\t_\n\n" * 20)
    out = tmp_path / "out"
    args = {
        "finetune": ["finetune", "--model", str(no_tokenizer), "--task", "pos", "--train", str(train)],
        "vocab reduce": ["vocab", "reduce", "--model", str(no_tokenizer), "--corpus", str(corpus_file)],
        "distill": [
            "distill",
            "--teacher",
            str(no_tokenizer),
            "--corpus",
            str(corpus_file),
            "--student-layers",
            "2",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
    }[verb]
    code = main([*args, "--out", str(out)])
    assert_one_error(code, capsys.readouterr().err, "has no tokenizer files")
    assert not out.exists()
