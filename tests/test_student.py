import pytest
import torch
from transformers import AutoModelForMaskedLM, BertConfig, BertForMaskedLM, XLMRobertaConfig, XLMRobertaForMaskedLM

from eliquare.distill.student import build_student, freeze_position_embeddings, hidden_targets, select_layers
from eliquare.errors import EliquareError
from eliquare.models import encoder_of
from eliquare.teachers import load_teacher


def test_alternate_map_is_2n_minus_1():
    # paper, Section 3: student layer n <- teacher layer 2n-1 (1-based) for 6 of 12
    assert [i + 1 for i in select_layers(12, 6)] == [1, 3, 5, 7, 9, 11]
    assert select_layers(12, 6, "first") == [0, 1, 2, 3, 4, 5]
    assert select_layers(12, 4, "last") == [8, 9, 10, 11]
    assert select_layers(12, 3, "2,4,12") == [1, 3, 11]


def test_evenly_spaced_map_and_its_old_name():
    assert [i + 1 for i in select_layers(12, 4)] == [1, 4, 7, 10]
    assert select_layers(12, 4, "alternate") == select_layers(12, 4, "evenly-spaced") == [0, 3, 6, 9]


@pytest.mark.parametrize(
    "bad, message",
    [
        ("1,3", "lists 2 layers"),
        ("0,3,5", "between 1 and 12"),
        ("1,1,5", "distinct"),
        ("middle", "not evenly-spaced"),
    ],
)
def test_bad_layer_maps(bad, message):
    with pytest.raises(EliquareError, match=message):
        select_layers(12, 3, bad)


@pytest.mark.parametrize("empty", ["", " ", ","])
def test_an_empty_layer_map_is_named_as_such(empty):
    """Not "give --student-layers 0", nor a complaint about the student's size: the map itself is empty."""
    for student_layers in (3, 6):
        with pytest.raises(EliquareError, match="layer_map .* is empty; give evenly-spaced, first, last or a") as e:
            select_layers(4, student_layers, empty)
        assert "--student-layers" not in str(e.value)


def test_student_larger_than_teacher():
    with pytest.raises(EliquareError, match="more layers"):
        select_layers(4, 6)


def _assert_layers_copied(student, teacher, layers):
    s_layers = encoder_of(student).encoder.layer
    t_layers = encoder_of(teacher).encoder.layer
    assert len(s_layers) == len(layers)
    for i, j in enumerate(layers):
        s_params = dict(s_layers[i].named_parameters())
        t_params = dict(t_layers[j].named_parameters())
        assert s_params.keys() == t_params.keys()
        for name in s_params:
            assert torch.equal(s_params[name], t_params[name]), (i, j, name)
        # and not equal to a neighbouring layer: the map is really followed
        other = t_layers[(j + 1) % len(t_layers)]
        assert not torch.equal(
            s_params["attention.self.query.weight"], dict(other.named_parameters())["attention.self.query.weight"]
        )


@pytest.mark.parametrize("family", ["bert", "xlmr"])
def test_student_layer_n_equals_teacher_layer_2n_minus_1(family):
    torch.manual_seed(0)
    if family == "bert":
        teacher = BertForMaskedLM(
            BertConfig(vocab_size=99, hidden_size=16, num_hidden_layers=12, num_attention_heads=2, intermediate_size=32)
        )
    else:
        teacher = XLMRobertaForMaskedLM(
            XLMRobertaConfig(
                vocab_size=99, hidden_size=16, num_hidden_layers=12, num_attention_heads=2, intermediate_size=32
            )
        )
    layers = select_layers(12, 6)
    student = build_student(teacher, layers)
    assert student.config.num_hidden_layers == 6
    _assert_layers_copied(student, teacher, layers)
    t_sd, s_sd = teacher.state_dict(), student.state_dict()
    for key in s_sd:
        if ".encoder.layer." not in key:  # embeddings and MLM head copied as they are
            assert torch.equal(s_sd[key], t_sd[key]), key


def test_head_missing_in_checkpoint_is_detected(tiny_bert, tiny_bert_no_head):
    assert load_teacher(str(tiny_bert)).has_mlm_head
    bare = load_teacher(str(tiny_bert_no_head))
    assert not bare.has_mlm_head
    student = build_student(bare.model, [0, 2], copy_head=False)
    # the fresh head's decoder is tied to the student's input embeddings
    assert student.get_output_embeddings().weight.data_ptr() == student.get_input_embeddings().weight.data_ptr()


def test_student_saves_and_loads(tiny_xlmr, tmp_path):
    teacher = load_teacher(str(tiny_xlmr)).model
    student = build_student(teacher, [1, 3])
    freeze_position_embeddings(student)
    assert not encoder_of(student).embeddings.position_embeddings.weight.requires_grad
    student.save_pretrained(tmp_path)
    again = AutoModelForMaskedLM.from_pretrained(tmp_path)
    for (k, a), (_, b) in zip(student.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("fixture", ["tiny_bert_no_head", "tiny_xlmr"])
def test_fresh_head_keeps_the_teachers_word_embeddings(fixture, request):
    # initialising a fresh head whose decoder is tied to the input embeddings used to overwrite the
    # copied word embeddings with random ones, so every student of a headless teacher (e5) started from noise
    teacher = load_teacher(str(request.getfixturevalue(fixture))).model
    student = build_student(teacher, [0, 2], copy_head=False)
    t_emb = encoder_of(teacher).embeddings.word_embeddings.weight
    s_emb = encoder_of(student).embeddings.word_embeddings.weight
    assert torch.equal(s_emb, t_emb)
    assert student.get_output_embeddings().weight is s_emb  # still tied
    for name, p in encoder_of(student).named_parameters():  # every encoder weight is the teacher's
        assert torch.equal(p, dict(encoder_of(teacher).named_parameters())[name.replace("layer.1.", "layer.2.")])


def test_hidden_targets_end_each_replaced_block():
    assert hidden_targets(select_layers(12, 6), 12) == [(1, 2), (2, 4), (3, 6), (4, 8), (5, 10), (6, 12)]
    assert hidden_targets(select_layers(12, 4), 12) == [(1, 3), (2, 6), (3, 9), (4, 12)]
    assert hidden_targets(select_layers(12, 4, "last"), 12) == [(1, 9), (2, 10), (3, 11), (4, 12)]
