"""ModernBERT (mmBERT, ModernBERT): rotary positions, no token types, alternating full and sliding-window attention.

Where its parts live in a ``ModernBertForMaskedLM``:

- ``model.embeddings`` (``tok_embeddings`` and a norm; no position or token-type embeddings: positions are rotary,
  computed in every layer from ``config.rope_parameters`` of that layer's attention kind);
- ``model.layers[i]`` (the layers) and ``model.final_norm`` (after the last one, kept by the student);
- the MLM head is ``head`` (dense, activation, norm) then ``decoder`` (tied to ``tok_embeddings``);
- each layer's attention is one fused projection ``attn.Wqkv`` whose output is [queries | keys | values]: the
  value-relation term takes its third chunk, the relation term all three (before the rotary positions).

Per-layer properties: ``config.layer_types[i]`` is layer i's attention kind (``full_attention`` or
``sliding_attention``, a window of ``config.local_attention`` tokens). A student keeps each copied layer's own kind:
its ``layer_types`` are the kept layers' (teacher layers 1,3,5,... of mmBERT-base: full every third layer, as in
the teacher). Layer 0 has no attention norm (the embeddings' norm serves it), so a student's first layer must be the
teacher's first.

Vocabulary: ModernBERT's tokenizer is a byte-level BPE (the BPE family of eliquare.vocab); for word-level tasks
(``is_split_into_words``) it needs ``add_prefix_space=True`` so that a word gets the same pieces as in running text.
"""

from __future__ import annotations

from eliquare.architectures import Architecture
from eliquare.errors import EliquareError

FULL, SLIDING = "full_attention", "sliding_attention"


def adapt_student(teacher_config, config, layers: list[int]) -> None:
    """The student's ``layer_types``: the attention kind of each teacher layer it copies."""
    kinds = [teacher_config.layer_types[i] for i in layers]
    config.layer_types = kinds
    # transformers 4.x reads the pattern from global_attn_every_n_layers (full where i % n == 0), not from
    # layer_types: write the n that gives the same kinds, when there is one
    for n in range(1, len(kinds) + 1):
        if all((k == FULL) == (i % n == 0) for i, k in enumerate(kinds)):
            config.global_attn_every_n_layers = n
            break


def check_layers(teacher_config, layers: list[int]) -> None:
    if layers and layers[0] != 0:
        raise EliquareError(
            f"a ModernBERT student's first layer must be the teacher's first (layer 1; the layer map "
            f"gives {layers[0] + 1}): ModernBERT's first layer has no attention norm of its own; give "
            "--layer-map evenly-spaced or first, or a list that starts with 1"
        )


ARCHITECTURES = {
    "modernbert": Architecture(
        encoder="model",
        head=("head", "decoder"),
        layers="layers",
        value="attn.Wqkv",
        fused_value=2,
        query="attn.Wqkv",
        key="attn.Wqkv",
        fused_query=0,
        fused_key=1,
        positions=None,
        tokenizer_family="BPE",
        adapt_student=adapt_student,
        check_layers=check_layers,
    ),
}
