"""What a model directory holds when it is handed to a user: the files they publish, readable, and no pickle.

``eliquare distill`` leaves in OUT only what a user uploads (checkpoints go to ``--checkpoint-dir``); this module
says which files those are (``published_files``, the list ``--push-to-hub`` uploads) and tidies a directory into
that state (``tidy``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from eliquare.errors import EliquareError

MODEL_FILES = ("config.json", "model.safetensors", "README.md")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "sentencepiece.bpe.model",
    "spiece.model",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
)
RECORD_FILES = ("distillation.json", "export.json", "vocab_report.json", "vocab_amp_report.json")  # what eliquare
# measured: the model card is written from them
# a sentence-embedding student (eliquare.embedding): its sentence-transformers files, and their module directories
SENTENCE_TRANSFORMERS_FILES = ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json")
_MODULE_DIR = re.compile(r"^\d+_[A-Za-z]+$")  # 1_Pooling, 2_Dense, 3_Normalize
ONNX_SUFFIXES = (".onnx", ".onnx.data")
# written by transformers' Trainer beside a saved model; torch.load refuses them under weights_only=True
TRAINER_PICKLES = ("training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
FILE_MODE = 0o644


def is_published(path: Path) -> bool:
    name = path.name
    return (
        name in MODEL_FILES
        or name in TOKENIZER_FILES
        or name in RECORD_FILES
        or name in SENTENCE_TRANSFORMERS_FILES
        or name.endswith(ONNX_SUFFIXES)
    )


def published_files(directory: str | Path) -> list[Path]:
    """The files of ``directory`` a user publishes (what ``--push-to-hub`` uploads), sorted by name."""
    directory = Path(directory)
    files = sorted(p for p in directory.iterdir() if p.is_file() and is_published(p))
    if (directory / "modules.json").is_file():  # the sentence-transformers modules' own files (pooling, dense)
        files += sorted(
            p
            for d in directory.iterdir()
            if d.is_dir() and _MODULE_DIR.match(d.name)
            for p in d.rglob("*")
            if p.is_file() and not p.name.endswith(PICKLE_SUFFIXES)
        )
    if not any(p.name == "config.json" for p in files):
        raise EliquareError(f"{directory} holds no config.json: it is not a model directory")
    pickles = [p.name for p in files if p.name.endswith(PICKLE_SUFFIXES)]
    if pickles:  # is_published admits none; a guard against a future name
        raise EliquareError(f"{directory} holds pickles ({', '.join(pickles)}); they are not published")
    return files


def tidy(directory: str | Path) -> list[Path]:
    """Remove the Trainer's pickles from a saved model directory and make its files readable by all (0644:
    safetensors and ``mkstemp`` write owner-only files); returns the published files."""
    directory = Path(directory)
    for name in TRAINER_PICKLES:
        (directory / name).unlink(missing_ok=True)
    files = published_files(directory)
    for path in files:
        os.chmod(path, FILE_MODE)
    return files


def finish_student_dir(directory: str | Path) -> list[Path]:
    """A distilled student's directory as it is handed over: tokenizer config that transformers 4.x loads, the
    model card written from ``distillation.json``, the Trainer's pickles gone, every file 0644."""
    from eliquare.card import write_card

    make_tokenizer_config_portable(directory)
    drop_call_settings(directory)
    write_card(directory)
    return tidy(directory)


def drop_call_settings(directory: str | Path) -> None:
    """``DIR/tokenizer.json`` without the truncation and padding that the run's own calls left on the tokenizer
    (``max_length`` 64 of the distillation, say): transformers resets them at every call, but the ``tokenizers``
    library and the runtimes built on it apply what the file says, so a saved one would cut every text there. It
    also makes the file the same whether or not the run found its corpus tokenised in the cache."""
    import json

    from tokenizers import Tokenizer

    path = Path(directory) / "tokenizer.json"
    if not path.is_file():
        return
    spec = json.loads(path.read_text(encoding="utf-8"))
    if spec.get("truncation") is None and spec.get("padding") is None:
        return
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    tokenizer.save(str(path))  # written by the library that wrote it, as it writes one that was never called


# transformers 5 saves a tokenizer it built from a tokenizer.json alone as "TokenizersBackend", a class that 4.x
# lacks ("Tokenizer class TokenizersBackend does not exist"). "PreTrainedTokenizerFast" is the same thing on both
# lines (5.x: an alias of TokenizersBackend; 4.x: the generic fast tokenizer): each loads tokenizer.json as written,
# so the model's own normaliser and pre-tokenizer are kept (a family class such as XLMRobertaTokenizerFast would
# be rebuilt by 5.x from the vocabulary, undoing them).
PORTABLE_TOKENIZER_CLASSES = {"TokenizersBackend": "PreTrainedTokenizerFast"}
_SAVED_FROM_KEYS = ("is_local", "local_files_only", "name_or_path")  # where it was loaded from, not what it is


def make_tokenizer_config_portable(directory: str | Path) -> None:
    """Rewrite ``DIR/tokenizer_config.json`` so that ``AutoTokenizer`` loads it on transformers 4.x and 5.x alike."""
    import json

    path = Path(directory) / "tokenizer_config.json"
    if not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    new = {k: v for k, v in config.items() if k not in _SAVED_FROM_KEYS}
    cls = new.get("tokenizer_class")
    new["tokenizer_class"] = PORTABLE_TOKENIZER_CLASSES.get(cls, cls) if cls is not None else None
    if new != config:
        path.write_text(json.dumps(new, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
