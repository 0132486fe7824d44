"""The masked-LM forward of distillation (``masked_lm_logits``): last hidden states, and vocabulary logits only at
the masked positions (the largest matmul of a distillation step), for the student, the teacher and
``teacher fit-head`` alike; on request every layer's hidden states, attention probabilities, value projections, or
one layer's query, key and value projections, read by forward hooks."""

from __future__ import annotations

import types

from eliquare.models.architecture import (
    attention_projections,
    encoder_of,
    mlm_head_of,
    value_projections,
    values_of,
)

IGNORE_INDEX = -100  # the label of a position no loss is computed at (torch's cross_entropy default)


def _keep_first_outputs(store: dict, names: list, _module, _inputs, output) -> None:
    """A forward hook: each named projection's first output of the forward pass (DeBERTa's query and key projections
    also project the relative-position embeddings, after the tokens)."""
    for name, chunk in names:
        if name not in store:
            store[name] = output if chunk is None else output.chunk(3, dim=-1)[chunk]


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
    hooks, captured, projected = _capture(model, values, relations)
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
    out = _logits_at_masks(model, hidden, labels, head_only) if logits else None
    return {
        "hidden": hidden,
        "logits": out,
        "layers": encoded.hidden_states if all_layers else None,
        "attentions": encoded.attentions if attentions else None,
        "values": captured if values else None,
        "relations": projected if relations is not None else None,
    }


def _capture(model, values: bool, relations: int | None) -> tuple[list, list, dict]:
    """Forward hooks that keep every layer's value projection outputs (``values``) and layer ``relations``'s query,
    key and value projection outputs; returns (the hooks, the values list, the projections dict) they fill."""
    import functools

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
    return hooks, captured, projected


def _logits_at_masks(model, hidden, labels, head_only: bool):
    """The MLM head's vocabulary logits at the masked positions only; with ``head_only`` its gradient reaches the
    head's own weights, not the encoder nor the (tied) word embeddings."""
    from torch.func import functional_call

    at_masks = hidden[labels != IGNORE_INDEX]
    head = mlm_head_of(model)
    if head_only:
        decoder = model.get_output_embeddings().weight
        name = next(n for n, p in head.named_parameters() if p is decoder)
        return functional_call(head, {name: decoder.detach()}, (at_masks.detach(),))
    return head(at_masks)


def use_masked_lm_forward(model):
    """Make ``model(...)`` run ``masked_lm_logits`` (installed on the instance, so that a DDP wrapper still
    sees a forward call); returns the model."""
    model.forward = types.MethodType(masked_lm_logits, model)
    return model
