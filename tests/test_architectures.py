"""The architectures beyond BERT/XLM-R (eliquare.architectures): ModernBERT, DeBERTa-v2, DistilBERT, ELECTRA.

For each, on a tiny random teacher with a tokenizer of its own family (tests/tiny_architectures.py): a student cut
from some layers computes what the teacher's kept layers compute (so per-layer properties and shared modules
travel), VocabReduce leaves tokenisation and hidden states as they were, the layer-wise terms read its attention and
values, and `eliquare distill --vocab-reduce pre` writes a student that plain transformers loads, that fine-tunes
for an epoch and that exports to ONNX within the parity check.
"""

from __future__ import annotations

import copy
import json
import random

import pytest
import tiny
import tiny_architectures
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from eliquare.cli import main
from eliquare.config import DistillConfig
from eliquare.distill.student import build_student, freeze_position_embeddings, select_layers
from eliquare.errors import EliquareError
from eliquare.models import (
    ARCHITECTURES,
    architecture_of,
    encoder_of,
    layers_of,
    masked_lm_logits,
    use_eager_attention,
    value_projections,
)
from eliquare.teachers import load_teacher
from eliquare.vocab import reduce_vocabulary

FAMILIES = list(tiny_architectures.BUILDERS)
MASKED_LM = {
    "modernbert": "ModernBertForMaskedLM",
    "modernbert-sentencepiece": "ModernBertForMaskedLM",
    "deberta-v2": "DebertaV2ForMaskedLM",
    "distilbert": "DistilBertForMaskedLM",
    "electra": "ElectraForMaskedLM",
}
VOCAB_FAMILY = {
    "modernbert": "BPE",
    "modernbert-sentencepiece": "BPE",
    "deberta-v2": "Unigram",
    "distilbert": "WordPiece",
    "electra": "WordPiece",
}
NO_POSITION_EMBEDDINGS = ("modernbert", "modernbert-sentencepiece", "deberta-v2")  # rotary / relative positions
FAST = [
    "--batch-size",
    "16",
    "--gradient-accumulation",
    "1",
    "--logging-steps",
    "5",
    "--max-steps",
    "2",
    "--health-sentences",
    "16",
]


@pytest.fixture(scope="session")
def teachers(tmp_path_factory) -> dict:
    return {name: build(tmp_path_factory.mktemp(name)) for name, build in tiny_architectures.BUILDERS.items()}


def _batch(tokenizer, sentences):
    enc = tokenizer(sentences, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def _kept_layers_of_teacher(teacher, layers):
    """The teacher with only ``layers`` left in its ModuleList: each layer module keeps its own properties."""
    pruned = copy.deepcopy(teacher)
    holder_path, _, name = architecture_of(teacher).layers.rpartition(".")
    holder = encoder_of(pruned).get_submodule(holder_path) if holder_path else encoder_of(pruned)
    setattr(holder, name, torch.nn.ModuleList([layers_of(pruned)[i] for i in layers]))
    return pruned


@pytest.mark.parametrize("family", FAMILIES)
def test_registered_with_its_parts(family, teachers):
    teacher = load_teacher(str(teachers[family]))
    model = teacher.model
    assert type(model).__name__ == MASKED_LM[family] and model.config.model_type in ARCHITECTURES
    parts = architecture_of(model)
    assert parts.tokenizer_family == VOCAB_FAMILY[family]
    assert len(layers_of(model)) == 4 and len(value_projections(model)) == 4
    assert teacher.has_mlm_head == (family != "electra")  # the discriminator's checkpoint holds no MLM head


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("layers", [[0, 2], [0, 3]])
def test_student_computes_what_the_teachers_kept_layers_compute(family, layers, teachers):
    """Per-layer properties (ModernBERT's attention kind: teacher layers 1 and 4 are both full attention, which a
    2-layer ModernBERT would not have by default) and what the layers share (DeBERTa's relative embeddings and their
    norm, ELECTRA's embedding projection, ModernBERT's final norm) travel with the layers."""
    teacher = load_teacher(str(teachers[family]))
    student = build_student(teacher.model, layers).eval()
    assert student.config.num_hidden_layers == len(layers_of(student)) == 2
    ids, mask = _batch(teacher.tokenizer, tiny.synthetic_sentences(8, seed=5))
    assert ids.shape[1] > 8  # longer than ModernBERT's sliding window
    with torch.no_grad():
        want = encoder_of(_kept_layers_of_teacher(teacher.model, layers))(input_ids=ids, attention_mask=mask)
        got = encoder_of(student)(input_ids=ids, attention_mask=mask)
    assert (want.last_hidden_state - got.last_hidden_state)[mask.bool()].abs().max() <= 1e-5
    t_state, s_state = teacher.model.state_dict(), student.state_dict()
    prefix = architecture_of(student).layer_prefix
    for key in s_state:
        if not key.startswith(prefix):  # embeddings, shared modules, final norms, head: copied as they are
            assert torch.equal(s_state[key], t_state[key]), key
    if family.startswith("modernbert"):
        kinds = teacher.model.config.layer_types
        assert kinds == ["full_attention", "sliding_attention", "sliding_attention", "full_attention"]
        assert student.config.layer_types == [kinds[i] for i in layers]
        assert [m.attention_type for m in layers_of(student)] == [kinds[i] for i in layers]
    if family == "deberta-v2":
        assert {"deberta.encoder.rel_embeddings.weight", "deberta.encoder.LayerNorm.weight"} <= set(s_state)


def test_modernbert_student_must_start_at_the_first_layer(teachers):
    teacher = load_teacher(str(teachers["modernbert"])).model
    with pytest.raises(EliquareError, match="first layer must be the teacher's first"):
        build_student(teacher, [1, 3])


@pytest.mark.parametrize("family", FAMILIES)
def test_position_embeddings_frozen_where_there_are_some(family, teachers):
    student = build_student(load_teacher(str(teachers[family])).model, [0, 2])
    if family in NO_POSITION_EMBEDDINGS:
        with pytest.raises(EliquareError, match="no learned position embeddings"):
            freeze_position_embeddings(student)
    else:
        freeze_position_embeddings(student)
        assert not encoder_of(student).embeddings.position_embeddings.weight.requires_grad


def test_deberta_v2_with_the_call_time_head_is_refused(teachers):
    model = load_teacher(str(teachers["deberta-v2"])).model
    model.config.legacy = False
    with pytest.raises(EliquareError, match="legacy: false"):
        architecture_of(model)


@pytest.mark.parametrize("family", FAMILIES)
def test_layerwise_outputs_read_attention_and_values(family, teachers):
    teacher = load_teacher(str(teachers[family]))
    model = teacher.model
    use_eager_attention(model)
    ids, mask = _batch(teacher.tokenizer, tiny.synthetic_sentences(4, seed=6))
    inputs = []
    hook = value_projections(model)[1].register_forward_hook(lambda _m, i, _o: inputs.append(i[0]))
    with torch.no_grad():
        out = masked_lm_logits(
            model, ids, mask, torch.full_like(ids, -100), logits=False, all_layers=True, attentions=True, values=True
        )
    hook.remove()
    b, n = ids.shape
    hidden = model.config.hidden_size
    assert len(out["layers"]) == 5 and len(out["attentions"]) == len(out["values"]) == 4
    assert all(v.shape == (b, n, hidden) for v in out["values"])
    assert out["attentions"][0].shape == (b, model.config.num_attention_heads, n, n)
    assert torch.allclose(out["attentions"][2].sum(-1), torch.ones(()), atol=1e-4)
    projection = value_projections(model)[1]
    weight, bias = projection.weight[-hidden:], None if projection.bias is None else projection.bias[-hidden:]
    assert torch.allclose(out["values"][1], torch.nn.functional.linear(inputs[0], weight, bias), atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_vocab_reduce_keeps_tokenisation_and_hidden_states(family, teachers, corpus_file):
    teacher = load_teacher(str(teachers[family]))
    corpus = corpus_file.read_text(encoding="utf-8").splitlines()
    reduced = copy.deepcopy(teacher.model)
    result = reduce_vocabulary(reduced, teacher.tokenizer, corpus, min_count=1)
    assert result.report["tokenizer_family"] == VOCAB_FAMILY[family]
    assert result.report["vocab_size"]["after"] < result.report["vocab_size"]["before"]
    sample = corpus[:64]
    assert all(result.tokenizer.tokenize(s) == teacher.tokenizer.tokenize(s) for s in sample)
    if family == "modernbert-sentencepiece":  # a character the corpus lacks is still spelt, in byte pieces
        assert "<0xC3>" in result.tokenizer.tokenize("Mtoto ß") == teacher.tokenizer.tokenize("Mtoto ß")
    ids, mask = _batch(teacher.tokenizer, sample)
    new_ids, new_mask = _batch(result.tokenizer, sample)
    assert torch.equal(torch.as_tensor(result.kept_ids)[new_ids][mask.bool()], ids[mask.bool()])
    with torch.no_grad():
        before = encoder_of(teacher.model)(input_ids=ids, attention_mask=mask).last_hidden_state
        after = encoder_of(reduced)(input_ids=new_ids, attention_mask=new_mask).last_hidden_state
    assert (before - after)[mask.bool()].abs().max() <= 1e-5


def _write_pos(path, n: int, seed: int):
    """A tagging task learnable by construction: a word's tag is its word class."""
    classes = {"SUBJ": tiny.SUBJECTS, "VERB": tiny.VERBS, "OBJ": tiny.OBJECTS, "PLACE": tiny.PLACES}
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for _ in range(n):
            for i, c in enumerate(["SUBJ", "VERB", "OBJ", "PLACE"][: rng.randint(3, 4)], 1):
                w = rng.choice(classes[c])
                f.write(f"{i}\t{w}\t{w}\t{c}\t_\t_\t0\t_\t_\t_\n")
            f.write("\n")
    return path


# the whole pipeline for one family here, the others behind -m slow (the checks above cover each family part by part)
@pytest.mark.parametrize(
    "family", [f if f == "modernbert" else pytest.param(f, marks=pytest.mark.slow) for f in FAMILIES]
)
def test_distil_finetune_and_export(family, teachers, corpus_file, tmp_path, capsys):
    out = tmp_path / "student"
    # a list of teacher layers, or the default: every other layer
    layers = ["--student-layers", "1,3"] if family.startswith("modernbert") else []
    code = main(
        [
            "distill",
            "--teacher",
            str(teachers[family]),
            "--corpus",
            str(corpus_file),
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--vocab-reduce",
            "pre",
            "--vocab-min-count",
            "1",
            "--alpha-hidden",
            "1",
            "--alpha-attn",
            "1",
            "--alpha-value",
            "1",
            *layers,
            *FAST,
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    record = json.loads((out / "distillation.json").read_text())
    assert record["student_layers"] == 2 and record["teacher_layers_used"] == [1, 3]
    assert record["teacher_has_mlm_head"] == (family != "electra")
    assert set(record["loss_weights"]) >= {"hidden", "attn", "value"}
    report = record["vocab_reduce"]
    assert report["identical_tokenisation"] == 1.0 and report["vocab_size"]["after"] < report["vocab_size"]["before"]

    tokenizer, student = AutoTokenizer.from_pretrained(out), AutoModelForMaskedLM.from_pretrained(out)
    assert type(student).__name__ == MASKED_LM[family] and student.config.num_hidden_layers == 2
    assert len(tokenizer) == student.config.vocab_size == report["vocab_size"]["after"]
    if family.startswith("modernbert"):
        assert student.config.layer_types == ["full_attention", "sliding_attention"]
        assert [m.attn.sliding_window is None for m in student.model.layers] == [True, False]
    if family == "deberta-v2":
        assert student.deberta.encoder.rel_embeddings.weight.shape[0] == 2 * 16  # the teacher's 16 buckets
    with torch.no_grad():
        logits = student(**tokenizer("Mtoto anasoma kitabu.", return_tensors="pt")).logits
    assert logits.shape[-1] == len(tokenizer)

    train, test = _write_pos(tmp_path / "train.conllu", 64, 1), _write_pos(tmp_path / "test.conllu", 16, 2)
    tuned = tmp_path / "pos"
    assert (
        main(
            [
                "finetune",
                "--model",
                str(out),
                "--task",
                "pos",
                "--train",
                str(train),
                "--test",
                str(test),
                "--out",
                str(tuned),
                "--epochs",
                "1",
                "--batch-size",
                "16",
                "--no-progress",
                "--use-cpu",
            ]
        )
        == 0
    )
    metrics = json.loads((tuned / "metrics.json").read_text())
    assert 0 <= metrics["score"] <= 1 and (tuned / "model" / "model.safetensors").is_file()

    assert main(["export", "--model", str(out), "--out", str(tmp_path / "onnx-mlm"), "--no-int8"]) == 0
    assert (
        main(
            [
                "export",
                "--model",
                str(tuned / "model"),
                "--out",
                str(tmp_path / "onnx-pos"),
                "--task-file",
                str(test),
                "--task",
                "pos",
            ]
        )
        == 0
    )
    for name in ("onnx-mlm", "onnx-pos"):
        exported = json.loads((tmp_path / name / "export.json").read_text())
        assert exported["parity"]["max_abs_difference"]["onnx-fp32"] <= 1e-4, (name, exported["parity"])
    scores = json.loads((tmp_path / "onnx-pos" / "export.json").read_text())["task"]["scores"]
    assert scores["pytorch"] == scores["onnx-fp32"]


def test_student_layers_a_count_a_list_or_every_other_layer():
    def cfg(**kw):
        return DistillConfig(corpus=["c.txt"], out="o", **kw)

    assert cfg().student_layers is None
    assert select_layers(12) == [0, 2, 4, 6, 8, 10] == select_layers(12, 6)  # the paper's 6 of 12
    assert select_layers(22) == list(range(0, 22, 2)) and select_layers(5) == [0, 2, 4]
    assert select_layers(12, None, "last") == list(range(6, 12))
    assert (cfg(student_layers="4").student_layers, cfg(student_layers=4).layer_map) == (4, "evenly-spaced")
    listed = cfg(student_layers="1, 3,5")
    assert (listed.student_layers, listed.layer_map) == (3, "1,3,5")
    assert select_layers(6, listed.student_layers, listed.layer_map) == [0, 2, 4]
    assert select_layers(6, None, "2,4") == [1, 3]
    assert cfg(student_layers="1,3", layer_map="1,3").layer_map == "1,3"
    with pytest.raises(EliquareError, match="give one of the two"):
        cfg(student_layers="1,3", layer_map="first")
    for bad in ("abc", "1,x", "0", True):
        with pytest.raises(EliquareError, match="student_layers"):
            cfg(student_layers=bad)
