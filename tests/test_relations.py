"""MiniLMv2's multi-head self-attention relation term (--alpha-relation, --recipe minilmv2): the loss itself (zero
for equal relations, blind to padding, across widths), the query/key/value projections of every family, where its
gradient goes, and a distillation run; and the hidden-state term as an MSE (--hidden-loss mse). Models are built in
memory from tiny configurations (random ids, no tokenizer) except for the run."""

import dataclasses
import json

import pytest
import tiny_architectures
import torch
from transformers import (
    BertConfig,
    BertForMaskedLM,
    DebertaV2Config,
    DebertaV2ForMaskedLM,
    DistilBertConfig,
    DistilBertForMaskedLM,
    ElectraConfig,
    ElectraForMaskedLM,
    ModernBertConfig,
    ModernBertForMaskedLM,
    XLMRobertaConfig,
    XLMRobertaForMaskedLM,
)

from eliquare import models
from eliquare.cli import main
from eliquare.config import DistillConfig
from eliquare.distill.losses import LossWeights, Objective, attention_relation_loss, cosine_loss, hidden_mse_loss
from eliquare.distill.objective import distillation_losses
from eliquare.distill.recipe import resolve_recipe, scaled_learning_rate
from eliquare.distill.rundir import run_settings
from eliquare.distill.student import relation_teacher_layer
from eliquare.distill.teacher_cache import cache_unsupported
from eliquare.errors import EliquareError
from eliquare.models import attention_projections, masked_lm_logits, use_masked_lm_forward

VOCAB = 60
SMALL = dict(vocab_size=VOCAB, max_position_embeddings=40, pad_token_id=0)


def _bert(hidden=32, heads=2, layers=2, seed=0):
    torch.manual_seed(seed)
    config = BertConfig(
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=2 * hidden, **SMALL
    )
    return BertForMaskedLM(config).eval()


FAMILIES = {
    "bert": lambda: _bert(),
    "xlm-roberta": lambda: XLMRobertaForMaskedLM(
        XLMRobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, **SMALL)
    ),
    "modernbert": lambda: ModernBertForMaskedLM(
        ModernBertConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            global_attn_every_n_layers=2,
            local_attention=8,
            **SMALL,
        )
    ),
    "deberta-v2": lambda: DebertaV2ForMaskedLM(
        DebertaV2Config(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            **tiny_architectures.DEBERTA_V2_OPTIONS,
            **SMALL,
        )
    ),
    "distilbert": lambda: DistilBertForMaskedLM(
        DistilBertConfig(dim=32, hidden_dim=64, n_layers=2, n_heads=2, **SMALL)
    ),
    "electra": lambda: ElectraForMaskedLM(
        ElectraConfig(
            embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, **SMALL
        )
    ),
}


def _padded_batch(lengths=(9, 5), seed=3):
    """Random ids for sentences of ``lengths``, padded with garbage ids (masked out) to the longest."""
    g = torch.Generator().manual_seed(seed)
    n = max(lengths)
    ids = torch.randint(5, VOCAB, (len(lengths), n), generator=g)
    mask = torch.zeros(len(lengths), n, dtype=torch.long)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
    return ids, mask


def _relations(model, ids, mask, layer=-1):
    with torch.no_grad():
        return masked_lm_logits(model, ids, mask, None, logits=False, relations=layer)["relations"]


def test_zero_for_equal_relations_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    states = {k: torch.randn(2, 7, 24, generator=g) for k in models.RELATIONS}
    other = {k: torch.randn(2, 7, 24, generator=g) for k in models.RELATIONS}
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    assert attention_relation_loss(states, states, mask, 4).item() == pytest.approx(0.0, abs=1e-6)
    assert attention_relation_loss(other, states, mask, 4).item() > 0.01
    # each of the three relations counts: a student with the teacher's queries and keys still pays for its values
    partly = {**states, "value": other["value"]}
    some = attention_relation_loss(partly, states, mask, 4).item()
    assert 0 < some < attention_relation_loss(other, states, mask, 4).item()


def test_different_widths_same_relation_heads():
    """A student twice as wide whose every head holds the teacher's head twice (scaled by 2^-1/4) has the teacher's
    relations exactly: the term compares relations, not states."""
    g = torch.Generator().manual_seed(1)
    heads, d = 3, 4
    teacher = {k: torch.randn(2, 6, heads * d, generator=g) for k in models.RELATIONS}

    def widened(x):
        per_head = x.view(2, 6, heads, d)
        return torch.cat([per_head, per_head], dim=-1).reshape(2, 6, heads * 2 * d) * 2**-0.25

    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3])
    student = {k: widened(v) for k, v in teacher.items()}
    assert attention_relation_loss(student, teacher, mask, heads).item() == pytest.approx(0.0, abs=1e-6)
    # two models of other widths (32 and 16), four relation heads each: 8 and 4 dimensions per head
    ids, mask = _padded_batch()
    t_rel = _relations(_bert(hidden=32, heads=2), ids, mask)
    s_rel = _relations(_bert(hidden=16, heads=2, layers=1, seed=1), ids, mask)
    assert t_rel["query"].shape[-1] == 32 and s_rel["query"].shape[-1] == 16
    loss = attention_relation_loss(s_rel, t_rel, mask, 4)
    assert torch.isfinite(loss) and loss.item() > 0


def test_padding_changes_nothing():
    """A padded batch's term is the unpadded sentences' terms weighted by their rows (the mean is over rows)."""
    teacher, student = _bert(seed=0), _bert(seed=1)
    lengths = (9, 5)
    ids, mask = _padded_batch(lengths)
    batch = attention_relation_loss(_relations(student, ids, mask), _relations(teacher, ids, mask), mask, 4).item()
    alone = []
    for row, n in enumerate(lengths):
        one_ids, one_mask = ids[row : row + 1, :n], mask[row : row + 1, :n]
        s, t = _relations(student, one_ids, one_mask), _relations(teacher, one_ids, one_mask)
        alone.append(attention_relation_loss(s, t, one_mask, 4).item())
    want = sum(n * loss for n, loss in zip(lengths, alone)) / sum(lengths)
    assert batch == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_gives_its_queries_keys_and_values(family):
    model = FAMILIES[family]().eval()
    assert model.config.model_type in models.ARCHITECTURES
    ids, mask = _padded_batch()
    rel = _relations(model, ids, mask, layer=0)
    assert set(rel) == set(models.RELATIONS)
    for states in rel.values():  # the tokens' (DeBERTa's key projection also projects its relative positions)
        assert states.shape == (2, ids.shape[1], 32)
    assert not torch.allclose(rel["query"], rel["key"]) and not torch.allclose(rel["key"], rel["value"])
    with torch.no_grad():
        values = masked_lm_logits(model, ids, mask, None, logits=False, values=True)["values"][0]
    assert torch.allclose(rel["value"], values)  # the value-relation term's values, the same layer


def test_gradient_reaches_the_projections_only_through_the_relation_term():
    teacher, student = _bert(seed=0), use_masked_lm_forward(_bert(seed=1))
    ids, mask = _padded_batch()
    batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.full_like(ids, -100)}
    on = Objective(LossWeights(ce=0.0, cos=0.0, mlm=0.0, relation=1.0), 2.0, relation_heads=4)
    parts = distillation_losses(student, teacher, batch, on)
    assert set(parts) == {"relation"} and parts["relation"].item() > 0
    on.weights.combine(parts).backward()
    last = student.bert.encoder.layer[-1]
    for projection in (last.attention.self.query, last.attention.self.key, last.attention.self.value):
        assert projection.weight.grad is not None and projection.weight.grad.abs().sum() > 0
    for after in (last.attention.output.dense, last.intermediate.dense, last.output.dense):
        assert after.weight.grad is None  # past the projections: the term does not reach them
    assert student.bert.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0  # below: through the input
    assert not any(p.grad is not None and p.grad.abs().sum() > 0 for p in teacher.parameters())
    student.zero_grad(set_to_none=True)
    off = Objective(LossWeights(ce=0.0, cos=1.0, mlm=0.0), 2.0)
    assert "relation" not in distillation_losses(student, teacher, batch, off)


def test_hidden_loss_mse_makes_the_hidden_state_term_a_mean_squared_error():
    """--hidden-loss mse (beside the relation term in the objective's options): Eq. 7's term as an MSE."""
    teacher, student = _bert(seed=0), use_masked_lm_forward(_bert(seed=1))
    ids, mask = _padded_batch()
    batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.full_like(ids, -100)}
    mse = distillation_losses(student, teacher, batch, Objective(LossWeights(0.0, 1.0, 0.0), 2.0, hidden_mse=True))
    with torch.no_grad():
        s, t = (masked_lm_logits(m, ids, mask, None, logits=False)["hidden"] for m in (student, teacher))
    assert mse["cos"].item() == pytest.approx(hidden_mse_loss(s, t, mask).item(), rel=1e-5)
    cosine = distillation_losses(student, teacher, batch, Objective(LossWeights(0.0, 1.0, 0.0), 2.0))
    assert cosine["cos"].item() == pytest.approx(cosine_loss(s, t, mask).item(), rel=1e-5)
    assert DistillConfig(corpus=["x"], out="y", hidden_loss="mse").hidden_loss == "mse"


def test_relation_layer_of_base_and_large_teachers():
    assert [relation_teacher_layer(n) for n in (4, 6, 12, 22)] == [3, 5, 11, 21]  # the last
    assert relation_teacher_layer(24) == 20  # layer 21 of 24 (1-based), MiniLMv2's for large teachers
    assert relation_teacher_layer(32) == 27


def test_recipe_minilmv2(corpus_file, tmp_path):
    cfg = DistillConfig(corpus=[str(corpus_file)], out=str(tmp_path / "s"), recipe="minilmv2")
    assert cfg.loss_weights(teacher_has_head=True) == {"ce": 0.0, "cos": 0.0, "mlm": 2.0, "relation": 1.0}
    recipe = resolve_recipe(cfg, 64, fresh_head=True)
    assert recipe.name == "minilmv2" and recipe.learning_rate == pytest.approx(scaled_learning_rate(64))
    assert run_settings(cfg)["relation"] == {"alpha_relation": 1.0, "relation_heads": None}
    given = DistillConfig(corpus=[str(corpus_file)], out=str(tmp_path / "s"), recipe="minilmv2", alpha_relation=3.0)
    assert given.loss_weights(teacher_has_head=True)["relation"] == 3.0
    plain = DistillConfig(corpus=[str(corpus_file)], out=str(tmp_path / "s"))
    assert "relation" not in plain.loss_weights(teacher_has_head=True)
    assert "relation" not in run_settings(plain)  # off: an older run's settings compare equal
    with pytest.raises(EliquareError, match="no hidden-state cosine term"):
        DistillConfig(corpus=[str(corpus_file)], out=str(tmp_path / "s"), recipe="minilmv2", alpha_cos=0.5)
    with pytest.raises(EliquareError, match="relation_heads must be at least 1"):
        DistillConfig(corpus=[str(corpus_file)], out=str(tmp_path / "s"), relation_heads=0)
    # the teacher cache holds last-layer states only
    assert "--alpha-relation" in cache_unsupported(Objective(LossWeights(0.0, 0.0, 2.0, relation=1.0), 2.0))


def _distill(teacher, corpus_file, tmp_path, *extra):
    return main(
        [
            "distill",
            "--teacher",
            str(teacher),
            "--corpus",
            str(corpus_file),
            "--out",
            str(tmp_path / "s"),
            "--cache-dir",
            str(tmp_path / "c"),
            "--student-layers",
            "2",
            "--batch-size",
            "8",
            "--gradient-accumulation",
            "1",
            "--logging-steps",
            "1",
            "--health-sentences",
            "0",
            *extra,
        ]
    )


def test_relation_term_in_a_run(tiny_bert, corpus_file, tmp_path, capsys):
    code = _distill(
        tiny_bert,
        corpus_file,
        tmp_path,
        "--max-steps",
        "3",
        "--eval-steps",
        "3",
        "--recipe",
        "minilmv2",
        "--alpha-relation",
        "1",
        "--relation-heads",
        "4",
        "--keep-checkpoints",
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "relation term: the student's last layer learns teacher layer 4 of 4" in err
    out = tmp_path / "s"
    record = json.loads((out / "distillation.json").read_text())
    assert record["loss_weights"] == {"ce": 0.0, "cos": 0.0, "mlm": 2.0, "relation": 1.0}
    assert record["relation"] == {"teacher_layer": 4, "student_layer": 2, "heads": 4}
    assert record["speed"]["teacher_cache"] is None
    history = [h["eval_relation"] for h in record["validation"]]
    assert len(history) >= 2 and all(v > 0 for v in history)  # teacher layer 4 against student layer 2 (teacher 3)
    settings = json.loads((tmp_path / "s.checkpoints" / "run_settings.json").read_text())["settings"]
    assert settings["relation"] == {"alpha_relation": 1.0, "relation_heads": 4}
    assert "L_relation" in (out / "README.md").read_text()


def test_a_family_without_query_and_key_projections_is_refused(tiny_bert, corpus_file, tmp_path, monkeypatch, capsys):
    unknown = dataclasses.replace(models.ARCHITECTURES["bert"], query=None, key=None)
    monkeypatch.setitem(models.ARCHITECTURES, "bert", unknown)
    with pytest.raises(EliquareError, match="a bert model keeps its query and key projection"):
        attention_projections(_bert(), -1)
    code = _distill(tiny_bert, corpus_file, tmp_path, "--max-steps", "1", "--alpha-relation", "1")
    err = capsys.readouterr().err
    assert code == 2 and "needs each layer's query and key projections" in err and "bert" in err
    assert not (tmp_path / "s").exists()
