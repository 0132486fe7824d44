"""bf16 autocast, length-grouped batches and the teacher cache: each keeps the distillation what it was."""

import json

import numpy as np
import pytest
import torch

from eliquare.cli import main
from eliquare.distill.losses import LossWeights, Objective
from eliquare.distill.teacher_cache import TeacherCache, cache_unsupported
from eliquare.training import autocast, bf16_available, resolve_bf16

FAST = ["--student-layers", "2", "--batch-size", "16", "--gradient-accumulation", "1", "--logging-steps", "5"]


def _tiny_distillation_losses(bf16: bool, steps: int = 50) -> list[float]:
    """The distillation loss of a tiny BERT student over ``steps`` AdamW steps (fp32 master weights)."""
    from transformers import BertConfig, BertForMaskedLM

    from eliquare.distill.objective import distillation_losses
    from eliquare.distill.student import build_student
    from eliquare.models import use_masked_lm_forward

    torch.manual_seed(0)
    teacher = BertForMaskedLM(
        BertConfig(
            vocab_size=120,
            hidden_size=64,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=128,
            max_position_embeddings=64,
        )
    ).eval()
    student = use_masked_lm_forward(build_student(teacher, [0, 2], copy_head=True))
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3)
    objective = Objective(LossWeights(ce=5.0, cos=1.0, mlm=2.0), temperature=2.0, centre=True)
    g = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(4):  # a few fixed batches, cycled: something a tiny student can learn in 50 steps
        ids = torch.randint(5, 120, (8, 24), generator=g)
        labels = torch.full_like(ids, -100)
        chosen = torch.rand(ids.shape, generator=g) < 0.15
        labels[chosen] = ids[chosen]
        batches.append(
            {"input_ids": ids.masked_fill(chosen, 4), "attention_mask": torch.ones_like(ids), "labels": labels}
        )
    losses = []
    for step in range(steps):
        batch = batches[step % len(batches)]
        with autocast(bf16, "cpu"):
            parts = distillation_losses(student, teacher, batch, objective)
        loss = objective.weights.combine(parts)
        assert loss.dtype == torch.float32  # the loss terms are computed in fp32 under autocast too
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def test_bf16_distillation_loss_stays_within_one_percent_of_fp32():
    fp32, bf16 = _tiny_distillation_losses(False), _tiny_distillation_losses(True)
    assert fp32[-1] < fp32[0]  # it trains
    worst = max(abs(a - b) / a for a, b in zip(fp32, bf16))
    assert worst < 0.01, f"bf16 loss departs from fp32 by {worst:.2%}"


def test_bf16_default_follows_the_processor():
    assert resolve_bf16(True) is True and resolve_bf16(False) is False
    assert resolve_bf16(None, use_cpu=True) is bf16_available(use_cpu=True)


def test_cache_refuses_what_it_cannot_serve():
    weights = LossWeights(ce=0.0, cos=1.0, mlm=2.0)
    assert cache_unsupported(Objective(weights, 2.0)) is None
    assert "layer-wise" in cache_unsupported(Objective(weights, 2.0, hidden_pairs=((1, 2),)))
    assert "embedding" in cache_unsupported(Objective(weights, 2.0, embedding=object()))


def test_cache_holds_the_teachers_states_of_unmasked_sentences(tiny_bert, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForMaskedLM

    teacher = AutoModelForMaskedLM.from_pretrained(tiny_bert).eval()
    rows = [[2, 10, 11, 12, 3], [2, 20, 3], [2, 30, 31, 32, 33, 34, 35, 3]]
    key = {"corpus": "x"}
    cache = TeacherCache.build(
        tmp_path / "c", key, teacher, {"train": Dataset.from_dict({"input_ids": rows})}, bf16=False
    )
    got = cache.split("train").gather(torch.tensor([2, 0]), 8, "cpu")
    with torch.no_grad():
        want = teacher.bert(input_ids=torch.tensor([rows[2]])).last_hidden_state[0]
        want0 = teacher.bert(input_ids=torch.tensor([rows[0]])).last_hidden_state[0]
    assert torch.allclose(got[0], want, atol=2e-3, rtol=2e-3)  # float16 storage
    assert torch.allclose(got[1, :5], want0, atol=2e-3, rtol=2e-3) and not got[1, 5:].any()  # padding: zeros
    assert TeacherCache.open(tmp_path / "c", key) is not None
    assert TeacherCache.open(tmp_path / "c", {"corpus": "y"}) is None  # computed from something else
    (tmp_path / "c" / "train.f16").write_bytes(b"\0" * 10)
    assert TeacherCache.open(tmp_path / "c", key) is None  # incomplete


def _distil(teacher, corpus, out, tmp_path, *extra):
    code = main(
        [
            "distill",
            "--teacher",
            str(teacher),
            "--corpus",
            str(corpus),
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--epochs",
            "3",
            "--learning-rate",
            "0.004",
            *FAST,
            *extra,
        ]
    )
    assert code == 0
    return json.loads((out / "distillation.json").read_text())


def test_a_run_with_the_cache_records_it_and_learns(tiny_bert_no_head, corpus_file, tmp_path, capsys):
    record = _distil(tiny_bert_no_head, corpus_file, tmp_path / "s", tmp_path)
    err = capsys.readouterr().err
    speed = record["speed"]
    assert speed["teacher_cache"] is not None and speed["pack"]  # three passes, no CE term: on by default
    assert speed["teacher_cache"]["splits"]["train"]["sentences"] == record["corpus_stats"]["train"]
    assert "teacher cache:" in err and "MB" in err and "precision:" in err
    assert speed["padding_share"] < 0.2  # length-grouped batches
    history = record["validation"]
    assert record["best_validation_loss"] < history[0]["eval_loss"] - 0.05
    assert not (tmp_path / "s.checkpoints").exists()  # the cache went with the checkpoints


def test_no_pack_pads_and_no_cache_runs_the_teacher(tiny_bert_no_head, corpus_file, tmp_path, capsys):
    record = _distil(
        tiny_bert_no_head, corpus_file, tmp_path / "s", tmp_path, "--no-pack", "--no-teacher-cache", "--no-bf16"
    )
    speed = record["speed"]
    assert speed["teacher_cache"] is None and not speed["bf16"] and speed["padding_share"] > 0.2


def test_an_explicit_cache_with_layerwise_terms_is_refused_before_writing(
    tiny_bert_no_head, corpus_file, tmp_path, capsys
):
    out = tmp_path / "s"
    code = main(
        [
            "distill",
            "--teacher",
            str(tiny_bert_no_head),
            "--corpus",
            str(corpus_file),
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--teacher-cache",
            "--hidden-layers",
            "mapped",
            *FAST,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--teacher-cache" in err and "Traceback" not in err
    assert len(err.strip().splitlines()[-1]) > 20 and not out.exists()


@pytest.mark.parametrize("bf16", [False, True])
def test_cache_states_match_the_teacher_on_real_batches(bf16, tiny_bert, tmp_path):
    """What a step reads from the cache is what the teacher computes on the unmasked batch."""
    from datasets import Dataset
    from transformers import AutoModelForMaskedLM

    teacher = AutoModelForMaskedLM.from_pretrained(tiny_bert).eval()
    rng = np.random.default_rng(0)
    rows = [[2, *rng.integers(5, 200, size=int(n)).tolist(), 3] for n in rng.integers(3, 30, size=40)]
    cache = TeacherCache.build(
        tmp_path / "c", {}, teacher, {"train": Dataset.from_dict({"input_ids": rows})}, bf16=bf16
    )
    pick = torch.tensor([5, 17, 33])
    longest = max(len(rows[i]) for i in pick.tolist())
    ids = torch.zeros((3, longest), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for j, i in enumerate(pick.tolist()):
        ids[j, : len(rows[i])], mask[j, : len(rows[i])] = torch.tensor(rows[i]), 1
    with torch.no_grad():
        want = teacher.bert(input_ids=ids, attention_mask=mask).last_hidden_state
    got = cache.split("train").gather(pick, longest, "cpu")
    keep = mask.bool()
    cos = torch.nn.functional.cosine_similarity(got[keep], want[keep], dim=-1)
    assert cos.min() > (0.99 if bf16 else 0.9999)
