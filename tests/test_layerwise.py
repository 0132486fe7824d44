"""Layer-wise terms beyond the paper: TinyBERT hidden-state MSE and attention KL, MiniLM value
relations, each against a hand computation, and in a distillation run."""

import json
import math

import numpy as np
import pytest
import torch

from eliquare.cli import main
from eliquare.distill.losses import attention_kl_loss, hidden_mse_loss, value_relation_loss

FAST = ["--student-layers", "2", "--batch-size", "8", "--gradient-accumulation", "1", "--logging-steps", "5"]


def test_hidden_mse_by_hand():
    s = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]])
    t = torch.tensor([[[1.0, 0.0], [0.0, 4.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0]])  # the padding position is left out
    assert hidden_mse_loss(s, t, mask).item() == pytest.approx((0 + 4 + 9 + 0) / 4)
    projection = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        projection.weight.copy_(torch.eye(2) * 2)
    assert hidden_mse_loss(s, t, mask, projection).item() == pytest.approx((1 + 16 + 36 + 16) / 4)


def test_attention_kl_by_hand():
    t = torch.tensor([[[[0.5, 0.5], [0.9, 0.1]]]])  # [batch 1, head 1, query 2, key 2]
    s = torch.tensor([[[[0.25, 0.75], [0.9, 0.1]]]])
    kl0 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert attention_kl_loss(s, t, torch.tensor([[1, 1]])).item() == pytest.approx(kl0 / 2)
    assert attention_kl_loss(s, t, torch.tensor([[1, 0]])).item() == pytest.approx(kl0)  # the padded query left out
    assert attention_kl_loss(t, t, torch.tensor([[1, 1]])).item() == pytest.approx(0.0, abs=1e-7)


def test_value_relation_by_hand():
    rng = np.random.default_rng(0)
    heads, n = 2, 3
    sv = rng.normal(size=(1, n, 4))
    tv = rng.normal(size=(1, n, 6))  # another width, the same heads
    mask = np.array([[1, 1, 0]])

    def relation(v):
        d = v.shape[-1] // heads
        out = []
        for h in range(heads):
            vh = v[0][:, h * d : (h + 1) * d]
            scores = vh @ vh.T / math.sqrt(d)
            scores[:, mask[0] == 0] = -np.inf
            e = np.exp(scores - scores.max(1, keepdims=True))
            out.append(e / e.sum(1, keepdims=True))
        return out

    kls = []
    for ps, pt in zip(relation(sv), relation(tv)):
        for q in range(n):
            if mask[0, q]:
                keep = mask[0] == 1
                kls.append(float((pt[q][keep] * np.log(pt[q][keep] / ps[q][keep])).sum()))
    got = value_relation_loss(torch.tensor(sv), torch.tensor(tv), torch.tensor(mask), heads).item()
    assert got == pytest.approx(np.mean(kls), rel=1e-6)
    assert value_relation_loss(torch.tensor(tv), torch.tensor(tv), torch.tensor(mask), heads).item() == pytest.approx(
        0.0, abs=1e-7
    )


@pytest.mark.parametrize(
    "flag,term", [("--alpha-hidden", "hidden"), ("--alpha-attn", "attn"), ("--alpha-value", "value")]
)
def test_layerwise_terms_in_a_run(flag, term, tiny_xlmr, corpus_file, tmp_path, capsys):
    out = tmp_path / "s"
    code = main(
        [
            "distill",
            "--teacher",
            str(tiny_xlmr),
            "--corpus",
            str(corpus_file),
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "c"),
            "--max-steps",
            "6",
            "--eval-steps",
            "3",
            "--learning-rate",
            "0.0003",
            "--alpha-ce",
            "0",
            "--alpha-cos",
            "0",
            "--alpha-mlm",
            "0",
            *FAST,
            "--student-layers",
            "1",
            "--keep-checkpoints",
            flag,
            "2",
        ]
    )
    assert code == 0, capsys.readouterr().err
    record = json.loads((out / "distillation.json").read_text())
    assert record["loss_weights"][term] == 2.0
    history = [h[f"eval_{term}"] for h in record["validation"]]
    assert all(v >= 0 for v in history) and history[0] > 0  # teacher layer 1 does not yet match layer 4
    assert history[-1] < history[0]  # the term alone is trained, and falls
    settings = json.loads((out.parent / f"{out.name}.checkpoints" / "run_settings.json").read_text())["settings"]
    assert settings["layerwise"][f"alpha_{term}"] == 2.0


def test_layerwise_terms_refuse_negative_weights(tiny_xlmr, corpus_file, tmp_path, capsys):
    code = main(
        [
            "distill",
            "--teacher",
            str(tiny_xlmr),
            "--corpus",
            str(corpus_file),
            "--out",
            str(tmp_path / "s"),
            "--alpha-attn",
            "-1",
        ]
    )
    assert code == 2 and "alpha_attn must be >= 0" in capsys.readouterr().err
