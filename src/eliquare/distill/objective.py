"""The loss step of distillation (Eq. 4 and its extensions): the teacher under ``torch.inference_mode``, the
vocabulary projection computed only at the masked positions for teacher and student alike, and each term computed in
fp32 outside autocast (``eliquare.distill.losses``)."""

from __future__ import annotations

import torch

from eliquare.distill.losses import (
    LossWeights,
    Objective,
    attention_kl_loss,
    attention_relation_loss,
    cosine_loss,
    hidden_mse_loss,
    mlm_loss,
    sentence_loss,
    similarity_loss,
    soft_target_loss,
    value_relation_loss,
)
from eliquare.distill.masking import IGNORE_INDEX
from eliquare.models import (
    masked_lm_logits,
    mlm_head_of,
)


def distillation_losses(
    student, teacher, batch: dict, objective: Objective, *, head_only: bool = False, stats: dict | None = None
) -> dict:
    """The terms of Eq. 4 for one batch; terms with weight 0 are skipped (the teacher head too).

    With ``objective.hidden_pairs`` the hidden-state term is the mean over those (student, teacher) layer
    pairs; ``stats``, if given, gains the student's masked-token hits and counts."""
    if objective.embedding is not None:
        return embedding_losses(student, teacher, batch, objective, head_only=head_only, stats=stats)
    if objective.cross is not None:
        return cross_token_losses(student, teacher, batch, objective, head_only=head_only, stats=stats)
    weights, hidden_pairs = objective.weights, objective.hidden_pairs
    labels = batch["labels"]
    masked = labels != IGNORE_INDEX
    out = student(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        labels=labels,
        head_only=head_only,
        **_layerwise_outputs(objective, "student"),
    )  # models.masked_lm_logits
    need_teacher_logits = weights.ce > 0
    if "teacher_hidden" in batch:  # the teacher's states of the unmasked sentences, computed once (teacher_cache)
        t_out = {"hidden": batch["teacher_hidden"], "logits": None}
        if need_teacher_logits and masked.any():
            with torch.inference_mode():
                t_out["logits"] = mlm_head_of(teacher)(batch["teacher_hidden"][masked])
    else:
        with torch.inference_mode():
            t_out = masked_lm_logits(
                teacher,
                batch["input_ids"],
                batch["attention_mask"],
                labels,
                logits=need_teacher_logits,
                **_layerwise_outputs(objective, "teacher"),
            )
    parts: dict[str, torch.Tensor] = layerwise_losses(out, t_out, batch["attention_mask"], objective)
    if weights.cos > 0 and hidden_pairs:
        mask = batch["attention_mask"]
        parts["cos"] = torch.stack(
            [hidden_state_loss(out["layers"][i], t_out["layers"][j].clone(), mask, objective) for i, j in hidden_pairs]
        ).mean()
    elif weights.cos > 0:
        parts["cos"] = hidden_state_loss(out["hidden"], t_out["hidden"].clone(), batch["attention_mask"], objective)
    if stats is not None and masked.any():
        stats["correct"] = stats.get("correct", 0) + int((out["logits"].argmax(-1) == labels[masked]).sum())
        stats["masked"] = stats.get("masked", 0) + int(masked.sum())
    if masked.any():
        if need_teacher_logits:
            parts["ce"] = soft_target_loss(out["logits"], t_out["logits"].clone(), objective.temperature)
        if weights.mlm > 0:
            parts["mlm"] = mlm_loss(out["logits"], labels[masked])
    return parts


def cross_token_losses(
    student, teacher, batch: dict, objective: Objective, *, head_only: bool = False, stats: dict | None = None
) -> dict:
    """Eq. 4 with the student on an amplified vocabulary and the teacher on its own (``--vocab-amp``): the teacher
    reads the student's text spelled in its pieces (``vocab.amp.CrossTokenisation``); the hidden-state term compares
    each student token with its span's mean teacher state; the soft targets are taken at masked old pieces. A
    sentence whose teacher spelling exceeds the teacher's limit is cut for both first (``CrossTokenisation.fit``)."""
    cross, weights = objective.cross, objective.weights
    assert cross is not None, "cross_token_losses needs objective.cross (--vocab-amp)"
    input_ids, mask, labels = cross.fit(batch["input_ids"], batch["attention_mask"], batch["labels"])
    masked = labels != IGNORE_INDEX
    out = student(input_ids=input_ids, attention_mask=mask, labels=labels, head_only=head_only)
    view = cross.teacher_batch(input_ids, mask, labels)
    with torch.inference_mode():
        t_out = masked_lm_logits(
            teacher,
            view["input_ids"],
            view["attention_mask"],
            view["labels"],
            logits=weights.ce > 0 and bool(view["ce_positions"].any()),
        )
    parts: dict[str, torch.Tensor] = {}
    if weights.cos:
        pooled = cross.pooled(t_out["hidden"].clone(), view["owner"], input_ids.shape)
        parts["cos"] = hidden_state_loss(out["hidden"], pooled, mask, objective)
    if stats is not None and masked.any():
        stats["correct"] = stats.get("correct", 0) + int((out["logits"].argmax(-1) == labels[masked]).sum())
        stats["masked"] = stats.get("masked", 0) + int(masked.sum())
    if masked.any():
        if weights.ce and view["ce_positions"].any():
            s_logits = out["logits"][view["ce_positions"]][:, : cross.old_size]
            parts["ce"] = soft_target_loss(s_logits, t_out["logits"].clone(), objective.temperature)
        if weights.mlm:
            parts["mlm"] = mlm_loss(out["logits"], labels[masked])
    return parts


def hidden_state_loss(
    student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, mask: torch.Tensor, objective: Objective
) -> torch.Tensor:
    """Eq. 7's hidden-state term as the objective has it: 1 - cosine (centred or not), or the mean squared error."""
    if objective.hidden_mse:
        return hidden_mse_loss(student_hidden, teacher_hidden, mask)
    return cosine_loss(student_hidden, teacher_hidden, mask, centre=objective.centre)


def _layerwise_outputs(objective: Objective, side: str) -> dict:
    """What the ``side`` ("student" or "teacher") forward pass must return for the objective's hidden-state and
    layer-wise terms."""
    w = objective.weights
    return {
        "all_layers": bool(objective.hidden_pairs) or w.hidden > 0,
        "attentions": w.attn > 0,
        "values": w.value > 0,
        "relations": objective.relation_layers[0 if side == "student" else 1] if w.relation > 0 else None,
    }


def layerwise_losses(out: dict, t_out: dict, mask: torch.Tensor, objective: Objective) -> dict:
    """The layer-wise terms beyond the paper, over ``objective.layer_pairs`` (student layer n <- teacher layer 2n,
    0-based here): TinyBERT's hidden-state MSE and attention KL (means over the pairs), MiniLM's value-relation KL
    of the last pair; and MiniLMv2's query/key/value relations of ``objective.relation_layers``."""
    w, pairs, parts = objective.weights, objective.layer_pairs, {}
    if w.relation:
        teacher = {name: states.clone() for name, states in t_out["relations"].items()}
        parts["relation"] = attention_relation_loss(out["relations"], teacher, mask, objective.relation_heads)
    if not pairs:
        return parts
    if w.hidden:
        parts["hidden"] = torch.stack(
            [hidden_mse_loss(out["layers"][i + 1], t_out["layers"][j + 1].clone(), mask) for i, j in pairs]
        ).mean()
    if w.attn:
        parts["attn"] = torch.stack(
            [attention_kl_loss(out["attentions"][i], t_out["attentions"][j].clone(), mask) for i, j in pairs]
        ).mean()
    if w.value:
        i, j = pairs[-1]
        parts["value"] = value_relation_loss(
            out["values"][i], t_out["values"][j].clone(), mask, objective.attention_heads
        )
    return parts


def embedding_losses(
    student, teacher, batch: dict, objective: Objective, *, head_only: bool = False, stats: dict | None = None
) -> dict:
    """The embedding objective's terms for one batch (``--objective embedding``): on the unmasked, prompted text
    (``input_ids``), the student's pooled sentence embedding against the teacher's (``sentence``), their in-batch
    similarity distributions (``contrastive``) and the token-level hidden-state term (``cos``); on the masked copy
    (``masked_input_ids``, made only when their weights are > 0), the MLM and soft-target terms."""
    weights, hidden_pairs = objective.weights, objective.hidden_pairs
    ids, mask = batch["input_ids"], batch["attention_mask"]
    pool_mask = batch.get("pool_mask")
    out = student(
        input_ids=ids, attention_mask=mask, labels=None, logits=False, **_layerwise_outputs(objective, "student")
    )
    with torch.inference_mode():
        t_out = masked_lm_logits(teacher, ids, mask, None, logits=False, **_layerwise_outputs(objective, "teacher"))
        t_emb = teacher.sentence_pooler(t_out["hidden"], mask, pool_mask)
    parts: dict[str, torch.Tensor] = layerwise_losses(out, t_out, mask, objective)
    if weights.sentence or weights.contrastive:
        s_emb = getattr(student, "module", student).sentence_pooler(out["hidden"], mask, pool_mask)
        if weights.sentence:
            parts["sentence"] = sentence_loss(s_emb, t_emb.clone(), objective.sentence_loss)
        if weights.contrastive:
            parts["contrastive"] = similarity_loss(s_emb, t_emb.clone(), objective.contrastive_temperature)
    if weights.cos and hidden_pairs:
        parts["cos"] = torch.stack(
            [hidden_state_loss(out["layers"][i], t_out["layers"][j].clone(), mask, objective) for i, j in hidden_pairs]
        ).mean()
    elif weights.cos:
        parts["cos"] = hidden_state_loss(out["hidden"], t_out["hidden"].clone(), mask, objective)
    if "masked_input_ids" in batch and (weights.mlm or weights.ce):
        masked_batch = {"input_ids": batch["masked_input_ids"], "attention_mask": mask, "labels": batch["labels"]}
        token_objective = Objective(LossWeights(ce=weights.ce, cos=0.0, mlm=weights.mlm), objective.temperature)
        parts.update(
            distillation_losses(student, teacher, masked_batch, token_objective, head_only=head_only, stats=stats)
        )
    return parts
