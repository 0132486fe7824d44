"""Where each supported architecture keeps its parts: one small module per family, one ``Architecture`` per
``config.model_type``.

An ``Architecture`` says where a ``*ForMaskedLM`` model of that type keeps its encoder (embeddings + layers), its
layers, its MLM head and each layer's self-attention query, key and value projections, and how a student cut from
some of the teacher's layers keeps each layer's own properties (``adapt_student``) or is refused (``check_layers``).
``eliquare.models`` (``encoder_of``, ``mlm_head_of``, ``value_projections``, ``attention_projections``) and
``eliquare.distill.student`` (``build_student``) read nothing else; docs/architectures.md tells how to add a family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Architecture:
    """Where the parts of a masked-LM model of one architecture live."""

    encoder: str  # attribute of the *ForMaskedLM model holding the bare encoder (embeddings + layers)
    head: tuple[str, ...] | str  # attribute(s) of the *ForMaskedLM model holding the MLM head, applied in this order
    layers: str = "encoder.layer"  # in the encoder: the ModuleList of transformer layers
    value: str = "attention.self.value"  # in each layer: the module whose output holds the self-attention's values
    fused_value: Optional[int] = None  # the value module is a fused q/k/v projection: the values are its third chunk
    # in each layer: the modules whose outputs hold the self-attention's queries and keys (None: not known for this
    # family, and the relation term is refused), and their chunk of a fused q/k/v projection's output
    query: Optional[str] = "attention.self.query"
    key: Optional[str] = "attention.self.key"
    fused_query: Optional[int] = None
    fused_key: Optional[int] = None
    positions: Optional[str] = "embeddings.position_embeddings"  # in the encoder: learned absolute positions (None:
    # rotary or relative positions, nothing to freeze)
    tokenizer_family: str = "WordPiece"  # the VocabReduce family of its usual tokenizer (eliquare.vocab.families)
    # (teacher config, student config, 0-based teacher layers kept): give the student's config its layers' own
    # per-layer properties (ModernBERT: each layer's attention kind)
    adapt_student: Optional[Callable] = None
    # (teacher config, 0-based teacher layers): raise EliquareError for a layer map this architecture cannot take
    check_layers: Optional[Callable] = None
    # (config): raise EliquareError for a variant of the architecture eliquare cannot distil
    check_config: Optional[Callable] = None

    def __post_init__(self) -> None:
        if isinstance(self.head, str):
            object.__setattr__(self, "head", (self.head,))

    @property
    def head_prefixes(self) -> tuple[str, ...]:
        """The state-dict key prefixes of the MLM head's weights."""
        return tuple(part + "." for part in self.head)

    @property
    def layer_prefix(self) -> str:
        """The state-dict key prefix of the teacher's layers (``bert.encoder.layer.``)."""
        return f"{self.encoder}.{self.layers}."


def _registry() -> dict[str, Architecture]:
    from eliquare.architectures import bert, deberta_v2, distilbert, electra, modernbert

    table: dict[str, Architecture] = {}
    for family in (bert, modernbert, deberta_v2, distilbert, electra):
        table.update(family.ARCHITECTURES)
    return table


# one entry per supported architecture (config.model_type)
ARCHITECTURES: dict[str, Architecture] = _registry()

__all__ = ["ARCHITECTURES", "Architecture"]
