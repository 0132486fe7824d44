import math

import pytest
import torch

from eliquare.distill.losses import LossWeights, Objective, cosine_loss, mlm_loss, soft_target_loss


def test_soft_target_loss_by_hand():
    s = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 0.0]])
    t = torch.tensor([[2.0, 0.0, 1.0], [0.0, 0.0, 3.0]])
    T = 2.0
    expected = 0.0
    for row_s, row_t in zip(s.tolist(), t.tolist()):
        zt = sum(math.exp(x / T) for x in row_t)
        zs = sum(math.exp(x / T) for x in row_s)
        pt = [math.exp(x / T) / zt for x in row_t]
        log_ps = [x / T - math.log(zs) for x in row_s]
        expected += -sum(p * lp for p, lp in zip(pt, log_ps))
    expected = expected / 2 * T * T
    assert soft_target_loss(s, t, T).item() == pytest.approx(expected, rel=1e-6)


def test_soft_target_loss_minimum_is_teacher_entropy():
    t = torch.tensor([[2.0, 0.0, 1.0]])
    p = torch.softmax(t / 3.0, -1)
    entropy = -(p * p.log()).sum().item() * 9.0
    assert soft_target_loss(t.clone(), t, 3.0).item() == pytest.approx(entropy, rel=1e-6)
    assert soft_target_loss(torch.tensor([[0.0, 2.0, 1.0]]), t, 3.0).item() > entropy


def test_cosine_loss_by_hand_ignores_padding():
    s = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [5.0, 5.0]]])
    t = torch.tensor([[[0.0, 1.0], [1.0, 1.0], [-1.0, 3.0]]])
    mask = torch.tensor([[1, 1, 0]])
    # token 0: cos = 0 -> 1; token 1: cos = 1 -> 0; token 2 is padding
    assert cosine_loss(s, t, mask).item() == pytest.approx(0.5, abs=1e-6)


def test_mlm_loss_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(4.0), 0.0]])
    labels = torch.tensor([1, 1])
    expected = (-math.log(3 / 4) - math.log(1 / 5)) / 2
    assert mlm_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_weighted_sum_and_zero_weights():
    parts = {"ce": torch.tensor(1.0), "cos": torch.tensor(2.0), "mlm": torch.tensor(3.0)}
    assert LossWeights(5, 1, 2).combine(parts).item() == pytest.approx(5 + 2 + 6)
    assert LossWeights(0, 1, 2).combine(parts).item() == pytest.approx(8)
    assert LossWeights(0, 1, 2).combine({"cos": torch.tensor(2.0), "mlm": torch.tensor(3.0)}).item() == 8
    with pytest.raises(ValueError):
        LossWeights(0, 0, 0).combine(parts)


def test_centred_cosine_gives_a_constant_student_nothing():
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(1, 50, 8, generator=g) + 5.0 * torch.ones(8)  # anisotropic: a large shared offset
    constant = teacher.mean(1, keepdim=True).expand_as(teacher)  # the mean direction, for every token
    mask = torch.ones(1, 50, dtype=torch.long)
    assert cosine_loss(constant, teacher, mask).item() < 0.1  # the plain term is nearly met by one vector
    assert (
        cosine_loss(constant + 1e-3 * torch.randn(1, 50, 8, generator=g), teacher, mask, centre=True).item() > 0.8
    )  # centred, it is no better than chance (1.0)
    assert cosine_loss(teacher, teacher, mask, centre=True).item() == pytest.approx(0.0, abs=1e-6)


def test_head_only_keeps_the_mlm_gradient_in_the_head(tiny_bert_no_head):
    from eliquare.distill.student import build_student
    from eliquare.models import use_masked_lm_forward
    from eliquare.teachers import load_teacher

    student = build_student(load_teacher(str(tiny_bert_no_head)).model, [0, 2], copy_head=False)
    use_masked_lm_forward(student)
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    labels = torch.tensor([[-100, 10, -100, 12, -100]])
    for head_only in (True, False):
        student.zero_grad(set_to_none=True)
        out = student(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, head_only=head_only)
        mlm_loss(out["logits"], labels[labels != -100]).backward()
        encoder_grads = [p.grad for p in student.bert.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
        assert student.cls.predictions.transform.dense.weight.grad.abs().sum() > 0
        assert bool(encoder_grads) is not head_only  # embeddings (tied decoder) and layers only when not head_only


def test_layer_wise_hidden_term_averages_the_mapped_pairs(tiny_bert):
    from eliquare.distill.objective import distillation_losses
    from eliquare.distill.student import build_student, hidden_targets
    from eliquare.models import use_masked_lm_forward
    from eliquare.teachers import load_teacher

    teacher = load_teacher(str(tiny_bert)).model
    student = build_student(teacher, [0, 2]).eval()  # no dropout: the two computations must agree
    use_masked_lm_forward(student)
    ids = torch.tensor([[2, 10, 11, 12, 13, 3]])
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.full_like(ids, -100)}
    pairs = hidden_targets([0, 2], 4)
    assert pairs == [(1, 2), (2, 4)]
    objective = Objective(LossWeights(0, 1, 0), 2.0, hidden_pairs=tuple(pairs))
    parts = distillation_losses(student, teacher, batch, objective)
    with torch.no_grad():
        s = student.bert(input_ids=ids, output_hidden_states=True).hidden_states
        t = teacher.bert(input_ids=ids, output_hidden_states=True).hidden_states
    mask = batch["attention_mask"]
    expected = (cosine_loss(s[1], t[2], mask) + cosine_loss(s[2], t[4], mask)) / 2
    assert parts["cos"].item() == pytest.approx(expected.item(), abs=1e-6)
    # student layer 1 is teacher layer 1: its output is the teacher's layer-1 output, not layer 2's
    assert cosine_loss(s[1], t[1], mask).item() == pytest.approx(0.0, abs=1e-6)
