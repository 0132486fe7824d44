"""What a loaded model is made of, read through the architecture registry (``eliquare.architectures``, one module
per family): its encoder, layers, MLM head and each layer's query/key/value projections (``encoder_of``,
``layers_of``, ``mlm_head_of``, ``value_projections``, ``attention_projections``), the decoder weight tied to the
word embeddings, its parameter count and the longest input it accepts. Any supported family works the same way;
an unsupported one is refused in one line."""

from __future__ import annotations

from eliquare.architectures import ARCHITECTURES, Architecture
from eliquare.errors import EliquareError

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
