import math

import pytest
import torch

from eliquare.losses import LossWeights, cosine_loss, mlm_loss, soft_target_loss


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
