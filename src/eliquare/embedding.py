"""Sentence embeddings: how a sentence-transformers model turns token states into one vector, and its modules
written beside a student's encoder.

A sentence-embedding teacher (multilingual-e5, LaBSE, paraphrase-multilingual-MiniLM, bge-m3) is an encoder plus
the modules of its ``modules.json``: a pooling (mean, CLS, max or last token), optionally dense layers (LaBSE) and
an L2 normalisation, and the prompts its inputs start with (e5: ``query: `` / ``passage: ``). ``EmbeddingSpec``
holds them (``eliquare.embedding_spec`` reads them); ``SentencePooler`` applies them (the student gets a trainable
copy); ``encode`` embeds texts; ``PromptCollator`` prompts the embedding objective's batches;
``save_sentence_transformers`` writes them beside a student's encoder so that ``SentenceTransformer(student_dir)``
loads it. The classic file layout (sentence-transformers 2.x-5.x) is written, which every version since reads.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, overload

import torch
from torch import nn

from eliquare.embedding_spec import (
    ACTIVATIONS,
    E5_SPEC,
    MODULES_FILE,
    DenseSpec,
    EmbeddingSpec,
    read_embedding_spec,
    sentence_transformers_files,
)
from eliquare.errors import EliquareError


class SentencePooler(nn.Module):
    """Token states + attention mask -> sentence embeddings, as the spec says (dense layers trainable)."""

    def __init__(self, spec: EmbeddingSpec):
        super().__init__()
        self.spec = spec
        layers = []
        for d in spec.dense:
            linear = nn.Linear(d.in_features, d.out_features, bias=d.bias)
            if d.state:
                linear.load_state_dict({k.removeprefix("linear."): v for k, v in d.state.items()})
            layers.append(nn.Sequential(linear, ACTIVATIONS[d.activation]()))
        self.dense = nn.ModuleList(layers)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, pool_mask: torch.Tensor | None = None):
        """``pool_mask``: the tokens pooled (default: the attention mask; without the prompt's tokens when the
        model pools without them)."""
        mask = (attention_mask if pool_mask is None else pool_mask).to(hidden.dtype).unsqueeze(-1)
        mode = self.spec.pooling
        if mode == "mean":
            out = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        elif mode == "cls":
            out = hidden[:, 0]
        elif mode == "max":
            out = hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(1).values
        else:  # lasttoken: the last token the attention mask keeps (right padding)
            last = attention_mask.sum(1).long() - 1
            out = hidden[torch.arange(hidden.shape[0], device=hidden.device), last.clamp(min=0)]
        for layer in self.dense:
            out = layer(out)
        if self.spec.normalize:
            out = nn.functional.normalize(out, dim=-1)
        return out

    def dense_specs(self) -> list[DenseSpec]:
        """The spec's dense layers with this pooler's (trained) weights."""
        return [
            DenseSpec(
                d.in_features,
                d.out_features,
                d.bias,
                d.activation,
                # each dense layer is Sequential(linear, activation); iterating a ModuleList gives mypy a Module
                {f"linear.{k}": v.detach().cpu().contiguous() for k, v in layer[0].state_dict().items()},  # type: ignore[index]
            )
            for d, layer in zip(self.spec.dense, self.dense)
        ]


_ACTIVATION_CLASSES = {
    "tanh": "torch.nn.modules.activation.Tanh",
    "identity": "torch.nn.modules.linear.Identity",
    "relu": "torch.nn.modules.activation.ReLU",
    "gelu": "torch.nn.modules.activation.GELU",
    "sigmoid": "torch.nn.modules.activation.Sigmoid",
}


def _write_json(target: Path, data) -> None:
    """``data`` as indented JSON at ``target``, by a temporary name: a kill leaves no half-written file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(target)


def _pooling_config(spec: EmbeddingSpec, hidden_size: int) -> dict:
    """``1_Pooling/config.json``: the spec's pooling mode among sentence-transformers' flags."""
    return {
        "word_embedding_dimension": hidden_size,
        "pooling_mode_cls_token": spec.pooling == "cls",
        "pooling_mode_mean_tokens": spec.pooling == "mean",
        "pooling_mode_max_tokens": spec.pooling == "max",
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": spec.pooling == "lasttoken",
        "include_prompt": spec.include_prompt,
    }


def _dense_config(d: DenseSpec) -> dict:
    """``N_Dense/config.json`` of one dense layer."""
    return {
        "in_features": d.in_features,
        "out_features": d.out_features,
        "bias": d.bias,
        "activation_function": _ACTIVATION_CLASSES[d.activation],
    }


def _prompts_config(spec: EmbeddingSpec) -> dict:
    """``config_sentence_transformers.json``: the prompts, the default one and the similarity function."""
    from eliquare import __version__

    return {
        "__version__": {"eliquare": __version__, "pytorch": torch.__version__},
        "prompts": dict(spec.prompts),
        "default_prompt_name": spec.default_prompt_name,
        "similarity_fn_name": spec.similarity_fn_name,
    }


def save_sentence_transformers(
    directory: str | Path,
    spec: EmbeddingSpec,
    hidden_size: int,
    pooler: SentencePooler | None = None,
    max_seq_length: int | None = None,
) -> list[str]:
    """Write the sentence-transformers files of ``spec`` into ``directory`` (which holds the encoder and its
    tokenizer): ``modules.json``, ``sentence_bert_config.json``, ``config_sentence_transformers.json`` (prompts),
    ``1_Pooling/``, any ``N_Dense/`` (with ``pooler``'s weights) and ``N_Normalize/``. Returns the paths written."""
    from safetensors.torch import save_file

    directory = Path(directory)
    written: list[str] = []

    def write(rel: str, data) -> None:
        _write_json(directory / rel, data)
        written.append(rel)

    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    write("1_Pooling/config.json", _pooling_config(spec, hidden_size))
    dense = pooler.dense_specs() if pooler is not None else spec.dense
    for d in dense:
        idx = len(modules)
        rel = f"{idx}_Dense"
        write(f"{rel}/config.json", _dense_config(d))
        save_file({k: v.contiguous() for k, v in d.state.items()}, str(directory / rel / "model.safetensors"))
        written.append(f"{rel}/model.safetensors")
        modules.append({"idx": idx, "name": str(idx), "path": rel, "type": "sentence_transformers.models.Dense"})
    if spec.normalize:
        idx = len(modules)
        (directory / f"{idx}_Normalize").mkdir(parents=True, exist_ok=True)
        modules.append(
            {"idx": idx, "name": str(idx), "path": f"{idx}_Normalize", "type": "sentence_transformers.models.Normalize"}
        )
    write(
        "sentence_bert_config.json",
        {"max_seq_length": max_seq_length or spec.max_seq_length or 512, "do_lower_case": False},
    )
    write("config_sentence_transformers.json", _prompts_config(spec))
    write(MODULES_FILE, modules)  # last: a directory with modules.json is a complete sentence-transformers model
    return written


def prompt_token_ids(tokenizer, prompt: str) -> list[int]:
    """The token ids a prompt adds in front of a text (no special tokens): ``tokenizer(prompt + text)`` is
    ``[CLS] + prompt ids + text ids + [SEP]`` for the usual tokenizers (checked in the tests)."""
    if not prompt:
        return []
    return list(tokenizer(prompt.rstrip(), add_special_tokens=False)["input_ids"])


@torch.no_grad()
def encode(
    encoder,
    tokenizer,
    spec: EmbeddingSpec,
    texts: Sequence[str],
    prompt: str = "",
    *,
    batch_size: int = 64,
    max_length: int = 512,
    pooler: SentencePooler | None = None,
):
    """Sentence embeddings of ``texts`` (float32 numpy, one row each) as the model's sentence-transformers
    modules compute them: ``prompt + text``, cut to ``max_length`` tokens, pooled, dense, normalised."""
    import numpy as np

    pooler = pooler if pooler is not None else SentencePooler(spec)
    encoder.eval()
    device = next(encoder.parameters()).device
    n_prompt = len(prompt_token_ids(tokenizer, prompt)) if prompt and not spec.include_prompt else 0
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list = [None] * len(texts)  # each text's vector, filled in order of length
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = tokenizer(
            [prompt + texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        mask = batch["attention_mask"].to(device)
        hidden = encoder(input_ids=batch["input_ids"].to(device), attention_mask=mask).last_hidden_state
        pool_mask = None
        if n_prompt:
            pool_mask = mask.clone()
            pool_mask[:, 1 : 1 + n_prompt] = 0
        vectors = pooler.to(device)(hidden, mask, pool_mask).float().cpu().numpy()
        for row, i in enumerate(idx):
            out[i] = vectors[row]
    return np.stack(out) if out else np.zeros((0, encoder.config.hidden_size), dtype="float32")


class _Masking(Protocol):
    """What ``PromptCollator`` uses of ``eliquare.distill.masking.MaskingCollator`` (a stage above this module)."""

    def pad(self, examples: Sequence[dict]) -> tuple[torch.Tensor, torch.Tensor]: ...

    def mask(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass
class PromptCollator:
    """The embedding objective's batches: each sentence (token ids with the tokenizer's specials) gets the next of
    the prompts after its first token, the batch is padded, and, for the MLM and soft-target terms, a masked copy
    is made (``masked_input_ids``, ``labels``). ``pool_mask`` leaves the prompt out of the pooling when the model
    pools without it.

    ``max_length``: the longest input the models take (``eliquare.models.length_limit``). A sentence of up to
    ``--max-length`` tokens is longer than that once prompted when ``--max-length`` is near the limit: its text is
    then cut at the end, its closing token ([SEP], </s>) kept, so that teacher and student read the same prompted
    text within the limit (sentence-transformers, which truncates the prompted text, does the same). The first cut
    is logged (one notice line)."""

    masking: _Masking  # eliquare.distill.masking.MaskingCollator: padding and masks
    prompts: list  # token ids of each prompt ([] for none), given in turn
    include_prompt: bool = True
    masked: bool = False
    max_length: int | None = None
    noticed: bool = False  # the notice of a cut is given once

    @classmethod
    def for_tokenizer(
        cls,
        masking,
        tokenizer,
        spec: EmbeddingSpec,
        names: Sequence[str] | None = None,
        masked: bool = False,
        max_length: int | None = None,
    ) -> PromptCollator:
        prompts = [prompt_token_ids(tokenizer, p) for p in spec.distillation_prompts(names)]
        longest = max(len(p) for p in prompts)
        if max_length is not None and longest + 3 > max_length:  # first and closing tokens, one of text
            raise EliquareError(
                f"the teacher's prompts take up to {longest} tokens, which leaves no text within its "
                f"limit of {max_length} tokens; give --prompts '' (none) or shorter ones"
            )
        return cls(masking, prompts, spec.include_prompt, masked, max_length)

    def __call__(self, examples: Sequence[dict]) -> dict:
        rows, lengths, cut = [], [], 0
        for i, e in enumerate(examples):
            ids = list(e["input_ids"])
            prompt = self.prompts[i % len(self.prompts)]
            row = ids[:1] + prompt + ids[1:]
            if self.max_length is not None and len(row) > self.max_length:
                row = row[: self.max_length - 1] + ids[-1:]  # the text cut at its end, the closing token kept
                cut += 1
            rows.append({"input_ids": row})
            lengths.append(len(prompt))
        if cut and not self.noticed:
            self.noticed = True
            if os.environ.get("RANK", "0") == "0":  # one line per run, not one per process
                print(
                    f"notice: {cut} of a batch's {len(examples)} sentences are longer than the models' limit of "
                    f"{self.max_length} tokens once prompted; their text is cut at the end (the closing token "
                    "kept) for the student and the teacher alike (logged once)",
                    file=sys.stderr,
                    flush=True,
                )
        input_ids, attention_mask = self.masking.pad(rows)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if not self.include_prompt and any(lengths):
            pool_mask = attention_mask.clone()
            for row, n in enumerate(lengths):
                pool_mask[row, 1 : 1 + n] = 0
            batch["pool_mask"] = pool_mask
        if self.masked:
            batch["masked_input_ids"], batch["labels"] = self.masking.mask(input_ids, attention_mask)
        return batch


@overload
def embedding_spec_for(model_spec: str, path: str | Path, default: Literal[True] = True) -> EmbeddingSpec: ...


@overload
def embedding_spec_for(model_spec: str, path: str | Path, default: bool) -> EmbeddingSpec | None: ...


def embedding_spec_for(model_spec: str, path: str | Path, default: bool = True) -> EmbeddingSpec | None:
    """How ``model_spec`` (resolved to ``path``) makes sentence embeddings: its sentence-transformers files; e5's
    for the offline teacher; otherwise (``default``) the mean of the last token states, L2-normalised, no prompts."""
    from eliquare.config import PACKAGED_PREFIX

    found = read_embedding_spec(sentence_transformers_files(path))
    if found is None and str(model_spec).startswith(PACKAGED_PREFIX):
        return E5_SPEC
    if found is None and default:
        return EmbeddingSpec(pooling="mean", normalize=True)
    return found
