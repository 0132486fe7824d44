"""Build a student from a teacher (Section 3 of the paper).

The student has the teacher's architecture with k of its layers, initialised from the teacher: by default every
other teacher layer, student layer n <- teacher layer 2n-1 (1-based; ceil(L/2) layers of an L-layer teacher, the
paper's 6 of 12), embeddings and MLM head copied, and whatever the architecture shares between its layers
(DeBERTa's relative-position embeddings) with them. Each copied layer keeps its own per-layer properties
(ModernBERT's attention kind: ``Architecture.adapt_student``).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from eliquare.config import LAYER_MAP_ALIASES
from eliquare.errors import EliquareError
from eliquare.models import architecture_of, encoder_of

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def check_layer_map(layer_map: str, student_layers: int | None, teacher_layers: int | None = None) -> list[int] | None:
    """The checks of ``select_layers`` that need no teacher, so that a bad ``--layer-map`` is one line before the
    teacher is loaded: a named map is known; a list is of distinct integers >= 1, as many as the student's layers
    (``student_layers`` None: as many as it lists). Returns the list's 1-based layers (None for a named map)."""
    layer_map = LAYER_MAP_ALIASES.get(layer_map, layer_map)
    if not layer_map.replace(",", "").strip():
        raise EliquareError(
            f"layer_map {layer_map!r} is empty; give evenly-spaced, first, last or a comma-separated "
            "list of 1-based teacher layers such as 1,3,5"
        )
    if layer_map in ("evenly-spaced", "first", "last"):
        return None
    try:
        chosen = [int(x) for x in layer_map.replace(" ", "").split(",") if x]
    except ValueError:
        raise EliquareError(
            f"layer_map '{layer_map}' is not evenly-spaced, first, last or a comma-separated list of layer numbers"
        ) from None
    if student_layers is not None and len(chosen) != student_layers:
        raise EliquareError(
            f"layer_map lists {len(chosen)} layers but the student has {student_layers}; "
            f"give --student-layers {len(chosen)}"
        )
    top = teacher_layers or max(chosen)
    if any(not 1 <= n <= top for n in chosen) or len(set(chosen)) != len(chosen):
        raise EliquareError(
            "layer_map entries must be distinct teacher layers "
            + (f"between 1 and {teacher_layers}" if teacher_layers else "counted from 1")
        )
    return chosen


def default_student_layers(teacher_layers: int) -> int:
    """The student's depth when none is given: every other teacher layer, ceil(L/2) (the paper's 6 of 12)."""
    return (teacher_layers + 1) // 2


def select_layers(
    teacher_layers: int, student_layers: int | None = None, layer_map: str = "evenly-spaced"
) -> list[int]:
    """0-based teacher layers that initialise student layers 0..k-1.

    ``student_layers`` None (the default of ``--student-layers``): every other teacher layer, student n <- teacher
    2n-1 (1-based), ceil(L/2) layers of an L-layer teacher (1,3,...,11 of 12, as in Section 3; 1,3,...,21 of
    mmBERT-base's 22); with a list for a map, as many as it lists.
    evenly-spaced: k layers evenly spaced from the first, i.e. student n <- teacher 2n-1 (1-based) for 6 of 12
    (Section 3), teacher layers 1, 4, 7, 10 for 4 of 12; first: the first k; last: the last k;
    "1,3,5": an explicit list of 1-based teacher layers. ``alternate`` is an alias of evenly-spaced.
    """
    chosen = check_layer_map(layer_map, student_layers, teacher_layers)
    layer_map = LAYER_MAP_ALIASES.get(layer_map, layer_map)
    if chosen is not None:
        student_layers = len(chosen)
    if student_layers is None:
        if layer_map == "evenly-spaced":
            return list(range(0, teacher_layers, 2))
        student_layers = default_student_layers(teacher_layers)
    if student_layers > teacher_layers:
        raise EliquareError(
            f"the student cannot have more layers ({student_layers}) than the teacher ({teacher_layers}); "
            f"give --student-layers {teacher_layers} or fewer"
        )
    if layer_map == "evenly-spaced":
        return [int(i * teacher_layers / student_layers) for i in range(student_layers)]
    if layer_map == "first":
        return list(range(student_layers))
    if layer_map == "last":
        return list(range(teacher_layers - student_layers, teacher_layers))
    assert chosen is not None  # check_layer_map returns None for the named maps only, handled above
    return [n - 1 for n in chosen]


def hidden_targets(layers: list[int], teacher_layers: int) -> list[tuple[int, int]]:
    """(student, teacher) hidden-state indices (0: embeddings, n: output of layer n) of the layer-wise hidden term.

    Student layer n replaces the teacher's layers from ``layers[n-1]`` up to the next mapped one, so its output is
    compared with the output of the last teacher layer of that block: student n <- teacher 2n for 6 of 12.
    """
    ends = [nxt for nxt in layers[1:]] + [teacher_layers]  # 0-based start of the next block = 1-based end of this
    return [(n + 1, end) for n, end in enumerate(ends)]


LARGE_TEACHER_LAYERS = 24  # MiniLMv2's large teachers (BERT-large, XLM-R large): relations of an upper-middle layer


def relation_teacher_layer(teacher_layers: int) -> int:
    """The 0-based teacher layer whose self-attention relations the student's last layer learns (the relation term):
    the last for a teacher of fewer than 24 layers, else the one 7/8 of the way up (layer 21 of 24, as MiniLMv2
    found best for large teachers)."""
    if teacher_layers < LARGE_TEACHER_LAYERS:
        return teacher_layers - 1
    return round(teacher_layers * 21 / LARGE_TEACHER_LAYERS) - 1


def build_student(teacher: PreTrainedModel, layers: list[int], *, copy_head: bool = True) -> PreTrainedModel:
    """A copy of ``teacher`` keeping only ``layers`` (0-based), weights copied tensor for tensor.

    Everything outside the layers (embeddings, final norms, DeBERTa's shared relative-position embeddings, the MLM
    head unless ``copy_head`` is false) is copied as it is; the architecture's per-layer properties follow the
    layers (``Architecture.adapt_student``), and a map it cannot take is refused (``Architecture.check_layers``)."""
    parts = architecture_of(teacher)
    if parts.check_layers is not None:
        parts.check_layers(teacher.config, layers)
    config = copy.deepcopy(teacher.config)
    if parts.adapt_student is not None:
        parts.adapt_student(teacher.config, config, layers)
    config.num_hidden_layers = len(layers)
    student = type(teacher)(config)
    teacher_state = teacher.state_dict()
    layer_prefix, head = parts.layer_prefix, parts.head_prefixes
    new_state = {}
    for key in student.state_dict():
        source = key
        if key.startswith(layer_prefix):
            index, rest = key[len(layer_prefix) :].split(".", 1)
            source = f"{layer_prefix}{layers[int(index)]}.{rest}"
        if not copy_head and key.startswith(head):
            continue
        new_state[key] = teacher_state[source].detach().clone()
    if not copy_head:
        # a fresh MLM head: initialised as the architecture does. Its decoder is tied to the input embeddings,
        # so it is initialised *before* the teacher's weights go in: initialising it afterwards would overwrite
        # the copied word embeddings with random ones (every student of a headless teacher then started from noise).
        for name in parts.head:
            student.get_submodule(name).apply(student._init_weights)
    missing, unexpected = student.load_state_dict(new_state, strict=False)
    student.tie_weights()
    bad = [k for k in missing if copy_head or not k.startswith(head)]
    if bad or unexpected:
        raise RuntimeError(f"student construction left weights unset: {bad or unexpected}")
    return student


def freeze_position_embeddings(model: PreTrainedModel) -> None:
    """Keep the learned position embeddings fixed (the paper does this for XLM-R students)."""
    path = architecture_of(model).positions
    try:
        embeddings = encoder_of(model).get_submodule(path) if path else None
    except AttributeError:  # DeBERTa without absolute positions (position_biased_input false) holds None there
        embeddings = None
    if embeddings is None:
        raise EliquareError(
            f"a {model.config.model_type} model has no learned position embeddings (its positions "
            "are rotary or relative, nothing to freeze); drop --freeze-position-embeddings"
        )
    embeddings.weight.requires_grad_(False)
