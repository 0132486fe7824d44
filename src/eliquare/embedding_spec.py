"""What a sentence-embedding model is made of, read from its sentence-transformers directory.

``EmbeddingSpec`` holds a model's pooling (mean, CLS, max or last token), its dense layers (``DenseSpec``: LaBSE's
768 -> 768 tanh), whether it L2-normalises, and the prompts its inputs start with (e5: ``query: `` / ``passage: ``).
``read_embedding_spec`` reads them from the modules a ``modules.json`` lists; ``sentence_transformers_files`` finds
those files for a local directory or a hub id. Applying and writing a spec is ``eliquare.embedding``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from eliquare.errors import EliquareError

POOLING_MODES = ("mean", "cls", "max", "lasttoken")
MODULES_FILE = "modules.json"
ACTIVATIONS = {"tanh": nn.Tanh, "identity": nn.Identity, "relu": nn.ReLU, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}


@dataclass
class DenseSpec:
    """A sentence-transformers ``Dense`` module: a linear layer and an activation (LaBSE: 768 -> 768, tanh)."""

    in_features: int
    out_features: int
    bias: bool = True
    activation: str = "identity"  # a key of ACTIVATIONS
    state: dict = field(default_factory=dict, repr=False)  # {"linear.weight": ..., "linear.bias": ...}


@dataclass
class EmbeddingSpec:
    """How the model pools, transforms and normalises, and the prompts it expects."""

    pooling: str = "mean"
    normalize: bool = True
    prompts: dict = field(default_factory=dict)
    default_prompt_name: str | None = None
    similarity_fn_name: str = "cosine"
    max_seq_length: int | None = None
    include_prompt: bool = True  # the prompt's tokens take part in the pooling
    dense: list[DenseSpec] = field(default_factory=list)

    def as_dict(self) -> dict:
        """What ``distillation.json`` records (the dense weights left out)."""
        return {
            "pooling": self.pooling,
            "normalize": self.normalize,
            "prompts": dict(self.prompts),
            "default_prompt_name": self.default_prompt_name,
            "dense": [
                {"in_features": d.in_features, "out_features": d.out_features, "activation": d.activation}
                for d in self.dense
            ],
        }

    def distillation_prompts(self, names: Sequence[str] | None = None) -> list[str]:
        """The prompts the distillation text is given in turn: ``names`` of ``prompts``, by default all of them
        (an e5 student then sees its sentences both as queries and as passages); ``[""]`` when there are none."""
        if names is not None:
            unknown = [n for n in names if n and n not in self.prompts]
            if unknown:
                raise EliquareError(
                    f"prompt(s) {', '.join(unknown)} are not the teacher's; it has "
                    f"{', '.join(self.prompts) or 'no prompts'} (give --prompts '' for none)"
                )
            chosen = [self.prompts[n] if n else "" for n in names]
        else:
            chosen = [p for p in self.prompts.values() if p]
        return list(dict.fromkeys(chosen)) or [""]


# multilingual-e5 (the offline teacher): mean pooling, L2 norm, "query: " / "passage: " (its model card)
E5_SPEC = EmbeddingSpec(
    pooling="mean", normalize=True, prompts={"query": "query: ", "passage": "passage: "}, max_seq_length=512
)


def has_sentence_transformers_config(path: str | Path) -> bool:
    return (Path(path) / MODULES_FILE).is_file()


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise EliquareError(
            f"{path} ({what}) is not readable JSON ({e}); fix it or remove the sentence-transformers files"
        ) from None


def _pooling_mode(config: dict, where: Path) -> str:
    if isinstance(config.get("pooling_mode"), str):  # sentence-transformers 6
        mode = config["pooling_mode"].replace("_token", "").replace("mean_tokens", "mean")
    else:
        chosen = [
            m
            for m, key in (
                ("cls", "pooling_mode_cls_token"),
                ("mean", "pooling_mode_mean_tokens"),
                ("max", "pooling_mode_max_tokens"),
                ("lasttoken", "pooling_mode_lasttoken"),
            )
            if config.get(key)
        ]
        if config.get("pooling_mode_mean_sqrt_len_tokens") or config.get("pooling_mode_weightedmean_tokens"):
            chosen.append("mean_sqrt_len" if config.get("pooling_mode_mean_sqrt_len_tokens") else "weightedmean")
        if len(chosen) != 1:
            raise EliquareError(
                f"{where}: pooling {chosen or 'none'} is not one of {', '.join(POOLING_MODES)}; "
                "eliquare distils models with a single pooling mode"
            )
        mode = chosen[0]
    if mode not in POOLING_MODES:
        raise EliquareError(f"{where}: pooling {mode!r} is not supported; use one of {', '.join(POOLING_MODES)}")
    return mode


def _read_dense(directory: Path) -> DenseSpec:
    config = _read_json(directory / "config.json", "a Dense module's configuration")
    activation = str(config.get("activation_function", "torch.nn.modules.linear.Identity")).rsplit(".", 1)[-1].lower()
    if activation not in ACTIVATIONS:
        raise EliquareError(
            f"{directory}: activation {activation!r} is not supported; use one of {', '.join(ACTIVATIONS)}"
        )
    if (directory / "model.safetensors").is_file():
        from safetensors.torch import load_file

        state = load_file(str(directory / "model.safetensors"))
    elif (directory / "pytorch_model.bin").is_file():
        state = torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise EliquareError(f"{directory} has no weights (model.safetensors or pytorch_model.bin)")
    return DenseSpec(
        int(config["in_features"]),
        int(config["out_features"]),
        bool(config.get("bias", True)),
        activation,
        {k: v.float() for k, v in state.items()},
    )


def read_embedding_spec(path: str | Path) -> EmbeddingSpec | None:
    """The embedding spec of a sentence-transformers directory (None when it has no ``modules.json``)."""
    path = Path(path)
    if not has_sentence_transformers_config(path):
        return None
    modules = _read_json(path / MODULES_FILE, "sentence-transformers modules")
    spec = EmbeddingSpec(normalize=False, pooling="")
    for module in modules if isinstance(modules, list) else []:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        where = path / str(module.get("path", ""))
        if kind == "Transformer":
            if module.get("path") not in ("", None, "0_Transformer"):
                raise EliquareError(
                    f"{path}: the encoder lies in {module['path']}/; eliquare reads models whose "
                    "encoder is in the top directory (the usual layout)"
                )
        elif kind == "Pooling":
            config = _read_json(where / "config.json", "the pooling configuration")
            spec.pooling = _pooling_mode(config, where)
            spec.include_prompt = bool(config.get("include_prompt", True))
        elif kind == "Dense":
            spec.dense.append(_read_dense(where))
        elif kind == "Normalize":
            spec.normalize = True
        else:
            raise EliquareError(
                f"{path}/{MODULES_FILE}: module {module.get('type')} is not supported (eliquare "
                "distils Transformer + Pooling [+ Dense] [+ Normalize] models)"
            )
    if not spec.pooling:
        raise EliquareError(
            f"{path}/{MODULES_FILE} lists no Pooling module; eliquare needs to know how the model "
            "pools its token states"
        )
    if (path / "config_sentence_transformers.json").is_file():
        st = _read_json(path / "config_sentence_transformers.json", "the sentence-transformers configuration")
        spec.prompts = {str(k): str(v) for k, v in (st.get("prompts") or {}).items()}
        spec.default_prompt_name = st.get("default_prompt_name")
        spec.similarity_fn_name = st.get("similarity_fn_name") or "cosine"
    if (path / "sentence_bert_config.json").is_file():
        spec.max_seq_length = _read_json(path / "sentence_bert_config.json", "max_seq_length").get("max_seq_length")
    return spec


ST_FILES = (
    "modules.json",
    "config_sentence_transformers.json",
    "sentence_bert_config.json",
    "*_Pooling/*",
    "*_Dense/*",
    "*_Normalize/*",
)


def sentence_transformers_files(path: str | Path) -> Path:
    """A local directory holding the model's sentence-transformers files: ``path`` itself, or for a hub id
    (``sentence-transformers/LaBSE``, ``intfloat/multilingual-e5-base``, ``BAAI/bge-m3``) the files fetched from
    the hub (or its local cache) with ``huggingface_hub.snapshot_download``: only those small files."""
    if Path(path).expanduser().is_dir():
        return Path(path).expanduser()
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(huggingface_hub.snapshot_download(str(path), allow_patterns=list(ST_FILES)))
    except LocalEntryNotFoundError:
        raise EliquareError(
            f"cannot fetch the sentence-transformers files of {path}: the hub cannot be reached and "
            "they are not in the local cache; connect, or give a local model directory"
        ) from None
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise EliquareError(
            f"cannot fetch the sentence-transformers files of {path} ({str(e).splitlines()[0]})"
        ) from None
