"""The distillation objective (Eq. 4-8 of the paper): L = a_ce L_ce + a_cos L_cos + a_mlm L_mlm, and the sentence-level
terms of the embedding objective (``--objective embedding``):
L += a_sentence L_sentence + a_contrastive L_contrastive."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from eliquare.embedding_spec import EmbeddingSpec
    from eliquare.vocab.amp import CrossTokenisation


def in_fp32(loss):
    """Run a loss term outside any autocast: under bf16 autocast a matmul of fp32 tensors still runs in bf16, so
    casting the inputs with ``.float()`` alone does not make the term's arithmetic fp32."""

    @functools.wraps(loss)
    def wrapped(*args, **kwargs):
        with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
            return loss(*args, **kwargs)

    return wrapped


@in_fp32
def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Eq. 5-6: cross-entropy of the student's tempered distribution against the teacher's, scaled by T^2.

    Both are [n_masked, vocab] logits at the masked positions; the mean is over positions.
    """
    t = temperature
    teacher_probs = F.softmax(teacher_logits.float() / t, dim=-1)
    student_log_probs = F.log_softmax(student_logits.float() / t, dim=-1)
    return -(teacher_probs * student_log_probs).sum(-1).mean() * (t * t)


@in_fp32
def cosine_loss(
    student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, attention_mask: torch.Tensor, centre: bool = False
) -> torch.Tensor:
    """Eq. 7: 1 - cos(student, teacher) of the last hidden states, averaged over non-padding tokens.

    ``centre``: subtract each side's mean token state over the batch first. An anisotropic target (e5's last
    layer: pairwise cosine 0.67) is otherwise largely met by one constant vector along its mean direction,
    and the plain term pulls the student towards that collapse; centred, a constant vector scores 0.
    """
    keep = attention_mask.bool()
    s, t = student_hidden[keep].float(), teacher_hidden[keep].float()
    if centre:
        s, t = s - s.mean(0, keepdim=True), t - t.mean(0, keepdim=True)
    return (1.0 - F.cosine_similarity(s, t, dim=-1)).mean()


@in_fp32
def mlm_loss(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 8: the student's own masked-LM cross-entropy against the original tokens (masked positions only)."""
    return F.cross_entropy(student_logits.float(), labels)


@in_fp32
def sentence_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str = "cosine") -> torch.Tensor:
    """The student's sentence embeddings [batch, dim] against the teacher's: 1 - cosine (mean over sentences), or
    the mean squared error (the multilingual-distillation loss of Reimers & Gurevych 2020)."""
    s, t = student.float(), teacher.float()
    if kind == "mse":
        return F.mse_loss(s, t)
    return (1.0 - F.cosine_similarity(s, t, dim=-1)).mean()


@in_fp32
def similarity_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """In-batch contrastive term with the teacher's similarity matrix as the target: for each sentence, the KL
    divergence from the teacher's softmax over cosine similarities to the other sentences of the batch (at
    ``temperature``) to the student's; mean over sentences. A sentence's similarity to itself is left out."""
    s = F.normalize(student.float(), dim=-1)
    t = F.normalize(teacher.float(), dim=-1)
    n = s.shape[0]
    if n < 2:
        return s.sum() * 0.0
    off = ~torch.eye(n, dtype=torch.bool, device=s.device)
    s_sim = (s @ s.T)[off].view(n, n - 1) / temperature
    t_sim = (t @ t.T)[off].view(n, n - 1) / temperature
    t_log = F.log_softmax(t_sim, dim=-1)
    return (t_log.exp() * (t_log - F.log_softmax(s_sim, dim=-1))).sum(-1).mean()


# --- layer-wise terms beyond the paper (its future work) -------------------------------------------


@in_fp32
def hidden_mse_loss(
    student_hidden: torch.Tensor,
    teacher_hidden: torch.Tensor,
    attention_mask: torch.Tensor,
    projection: torch.nn.Module | None = None,
) -> torch.Tensor:
    """TinyBERT's hidden-state term for one mapped layer pair: the mean squared error between the student's states
    (through ``projection`` when the widths differ) and the teacher's, over non-padding tokens."""
    keep = attention_mask.bool()
    s, t = student_hidden[keep].float(), teacher_hidden[keep].float()
    if projection is not None:
        s = projection(s)
    return F.mse_loss(s, t)


@in_fp32
def attention_kl_loss(
    student_attn: torch.Tensor, teacher_attn: torch.Tensor, attention_mask: torch.Tensor, eps: float = 1e-12
) -> torch.Tensor:
    """TinyBERT's attention term for one mapped layer pair: KL(teacher || student) of the attention distributions
    [batch, heads, query, key], averaged over heads and the non-padding query positions. The student needs as many
    heads as the teacher (it has: its layers are the teacher's)."""
    t = teacher_attn.float().clamp(min=eps)
    s = student_attn.float().clamp(min=eps)
    kl = (t * (t.log() - s.log())).sum(-1)  # [batch, heads, query]
    keep = attention_mask.bool()[:, None, :].expand_as(kl)
    return kl[keep].mean()


@in_fp32
def value_relation_loss(
    student_values: torch.Tensor, teacher_values: torch.Tensor, attention_mask: torch.Tensor, heads: int
) -> torch.Tensor:
    """MiniLM's self-attention value-relation term (Wang et al. 2020) for one layer pair: per head,
    VR = softmax(V V^T / sqrt(d_head)) over the keys (padding masked), and KL(teacher VR || student VR), averaged over
    heads and non-padding positions. ``*_values``: the value projections' outputs [batch, seq, hidden]; the two sides
    may differ in width, not in heads."""

    def relation(v):
        b, n, width = v.shape
        v = v.float().view(b, n, heads, width // heads).transpose(1, 2)  # [b, h, n, d]
        scores = v @ v.transpose(-1, -2) / math.sqrt(width // heads)
        scores = scores.masked_fill(~attention_mask.bool()[:, None, None, :], float("-inf"))
        return F.log_softmax(scores, dim=-1)

    t_log, s_log = relation(teacher_values), relation(student_values)
    kl = (t_log.exp() * (t_log - s_log)).nan_to_num(0.0).sum(-1)  # [b, h, n]
    keep = attention_mask.bool()[:, None, :].expand_as(kl)
    return kl[keep].mean()


@in_fp32
def attention_relation_loss(
    student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor], attention_mask: torch.Tensor, heads: int
) -> torch.Tensor:
    """MiniLMv2's multi-head self-attention relation term (Wang et al. 2021) for one teacher and one student layer:
    for each of the query, key and value projections' outputs [batch, seq, width] (``{"query", "key", "value"}``),
    split into ``heads`` relation heads (their own count, not the attention heads'), the relation
    softmax(X X^T / sqrt(d_r)) over the non-padding keys, and KL(teacher || student) averaged over the relation heads
    and the non-padding rows; the sum of the query-query, key-key and value-value terms. The two sides may differ in
    width (so in d_r), not in relation heads."""
    return sum(value_relation_loss(student[name], teacher[name], attention_mask, heads) for name in teacher)


TERMS = ("ce", "cos", "mlm", "sentence", "contrastive", "hidden", "attn", "value", "relation")


@dataclass(frozen=True)
class LossWeights:
    """a_ce, a_cos, a_mlm of Eq. 4; a run's come from its config (``DistillConfig.loss_weights``; paper: 5, 1, 2)."""

    ce: float
    cos: float
    mlm: float
    sentence: float = 0.0  # the embedding objective's terms
    contrastive: float = 0.0
    hidden: float = 0.0  # layer-wise terms (TinyBERT hidden states and attention, MiniLM value relations)
    attn: float = 0.0
    value: float = 0.0
    relation: float = 0.0  # MiniLMv2's query, key and value relations of one layer pair

    def combine(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """Eq. 4: the weighted sum; a term whose weight is 0 is not computed at all."""
        total = None
        for name in TERMS:
            weight = getattr(self, name)
            if weight and name in parts:
                term = weight * parts[name]
                total = term if total is None else total + term
        if total is None:
            raise ValueError("all loss weights are 0: nothing to train")
        return total


@dataclass(frozen=True)
class Objective:
    """What the loss step computes: the weights (Eq. 4), the temperature (Eq. 5-6) and the hidden-state term."""

    weights: LossWeights
    temperature: float
    centre: bool = False  # the hidden-state term on centred states (eliquare's recipe; the paper: False)
    hidden_pairs: tuple[tuple[int, int], ...] = ()  # (student, teacher) hidden-state indices; (): last layers (Eq. 7)
    embedding: EmbeddingSpec | None = None  # the embedding objective: the teacher's pooling and prompts
    sentence_loss: str = "cosine"  # cosine or mse
    contrastive_temperature: float = 0.05
    layer_pairs: tuple[tuple[int, int], ...] = ()  # (student, teacher) 0-based layers of the layer-wise terms
    attention_heads: int = 1  # for the value-relation term
    relation_layers: tuple[int, int] = (-1, -1)  # (student, teacher) 0-based layer of the relation term
    relation_heads: int = 1  # the relation term's heads
    hidden_mse: bool = False  # the hidden-state term as a mean squared error (--hidden-loss mse), not 1 - cosine
    cross: CrossTokenisation | None = None  # --vocab-amp: the student's vocabulary is not the teacher's
