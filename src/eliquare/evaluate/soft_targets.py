"""Task distillation: a teacher fine-tuned on the task labels text, and the student learns from its predictions.

`eliquare finetune --soft-teacher DIR [--soft-corpus PATH]`: the teacher (a model fine-tuned on the same task and
labels, `eliquare finetune --save-model`) predicts a distribution over the labels for every word (POS, NER) or text
(classification) of the training split and of up to ``--soft-examples`` units of unlabelled target-language text
(sentences split into words for token tasks; runs of consecutive sentences about as long as the training texts for
classification). The student is then fine-tuned on both sets with

    L = CE(gold) + soft_weight * T^2 * KL(softmax(teacher / T) || softmax(student / T))

(Hinton et al. 2015), the gold term on the training examples only, the soft term on every labelled position.
The distributions are per word, so teacher and student may tokenise differently (a VocabReduce'd student).
Corpus sentences that are also dev or test text are left out, so that the teacher never labels what is scored.
"""

from __future__ import annotations

import re
import statistics
import sys
from typing import TYPE_CHECKING

import numpy as np

from eliquare.corpus.read import iter_sentences
from eliquare.errors import EliquareError
from eliquare.tasks.encoding import encode, quiet_transformers
from eliquare.tasks.files import TaskData, TextExample, TokenExample

if TYPE_CHECKING:
    from eliquare.models import Head

# words as UD and CoNLL tokenise them, roughly: runs of letters and digits (with inner hyphens and apostrophes)
# and each punctuation mark on its own
_WORD = re.compile(r"\w+(?:['’-]\w+)*|[^\w\s]")
MAX_PASSAGE_WORDS = 256


def _head(task: str) -> Head:
    return "sequence-classification" if task == "classify" else "token-classification"


def _held_out(data: TaskData) -> set[str]:
    """The dev and test texts as whitespace-normalised strings (for classification: each of their sentences too)."""
    from eliquare.corpus.read import split_sentences

    seen = set()
    for e in list(data.dev) + list(data.test):
        if data.task == "classify":
            seen.add(" ".join(e.text.split()))
            seen.update(" ".join(s.split()) for s in split_sentences(e.text))
        else:
            seen.add(" ".join(e.words))
    return seen


def corpus_examples(corpus: list[str], data: TaskData, limit: int) -> list:
    """Up to ``limit`` unlabelled examples of the task's kind from ``corpus``, none of them dev or test text."""
    if limit == 0 or not corpus:
        return []
    held_out = _held_out(data)
    filler = data.labels[0]  # a label the encoder accepts; corpus examples are trained on soft targets only
    out: list = []
    if data.task == "classify":
        lengths = [len(e.text.split()) for e in data.train] or [64]
        target = min(MAX_PASSAGE_WORDS, max(8, int(statistics.median(lengths))))
        words: list[str] = []
        for sentence in iter_sentences(corpus):
            if " ".join(sentence.split()) in held_out:
                continue
            words += sentence.split()
            if len(words) >= target:
                out.append(TextExample(text=" ".join(words), label=filler, source="soft-corpus", line=len(out) + 1))
                words = []
                if len(out) == limit:
                    break
        return out
    for sentence in iter_sentences(corpus):
        tokens = _WORD.findall(sentence)
        if not tokens or " ".join(tokens) in held_out:
            continue
        out.append(TokenExample(words=tokens, tags=[filler] * len(tokens), source="soft-corpus", line=len(out) + 1))
        if len(out) == limit:
            break
    return out


def _label_positions(feature: dict) -> list[int]:
    labels = feature["labels"]
    return [p for p, lab in enumerate(labels) if lab != -100]


def teacher_logits(teacher: str, task: str, labels: list[str], examples: list, max_length: int, batch_size: int):
    """The teacher's logits for each example: ``[labels]`` for a text, ``[words, labels]`` for a sentence."""
    import torch

    from eliquare.models import load_model

    with quiet_transformers():
        loaded = load_model(teacher, head=_head(task), tokenizer=True)
    model, tokenizer = loaded.model, loaded.tokenizer
    id2label = getattr(model.config, "id2label", None) or {}
    theirs = [id2label.get(i, id2label.get(str(i))) for i in range(model.config.num_labels)]
    if theirs != list(labels) or loaded.new_weights:
        raise EliquareError(
            f"--soft-teacher {teacher} was not fine-tuned on these labels (it has {', '.join(map(str, theirs))}; the "
            f"data has {', '.join(labels)}); give the model/ directory of `eliquare finetune --save-model` on this task"
        )
    label2id = {lab: i for i, lab in enumerate(labels)}
    feats, owners, _ = encode(task, examples, tokenizer, label2id, max_length)
    model.eval()
    per_feature: list = [None] * len(feats)
    order = sorted(range(len(feats)), key=lambda j: len(feats[j]["input_ids"]))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            inputs = [{k: v for k, v in feats[j].items() if k != "labels"} for j in chunk]
            batch = tokenizer.pad(inputs, return_tensors="pt")
            logits = model(**batch).logits.float().numpy()
            for row, j in enumerate(chunk):
                if task == "classify":
                    per_feature[j] = logits[row]
                else:
                    n = len(feats[j]["input_ids"])
                    offset = logits.shape[1] - n if tokenizer.padding_side == "left" else 0
                    per_feature[j] = logits[row, offset + np.asarray(_label_positions(feats[j]), dtype=np.int64)]
    if task == "classify":
        return [per_feature[j] for j in range(len(feats))]
    words: list[list] = [[] for _ in examples]
    for j, owner in enumerate(owners):  # windows of one sentence follow each other in order
        words[owner].append(per_feature[j])
    return [np.concatenate(w) if w else np.zeros((0, len(labels)), np.float32) for w in words]


def attach(task: str, features: list[dict], owners: list[int], logits: list, gold: bool) -> list[dict]:
    """The features with the teacher's logits (``soft_logits``; token tasks: a row per token, ``soft_mask`` on the
    first sub-word of each word); without ``gold`` their labels are dropped (-100), as the corpus has none."""
    out, taken = [], [0] * len(logits)
    for feature, owner in zip(features, owners):
        f = dict(feature)
        if task == "classify":
            f["soft_logits"] = np.asarray(logits[owner], np.float32)
            if not gold:
                f["labels"] = -100
        else:
            positions = _label_positions(feature)
            rows = logits[owner][taken[owner] : taken[owner] + len(positions)]
            if len(rows) != len(positions):  # cannot happen: both tokenisations label every word once
                raise RuntimeError(f"example {owner}: {len(rows)} teacher words for {len(positions)} student words")
            taken[owner] += len(positions)
            soft = np.zeros((len(feature["input_ids"]), rows.shape[1]), np.float32)
            soft[positions] = rows
            mask = np.zeros(len(feature["input_ids"]), bool)
            mask[positions] = True
            f["soft_logits"], f["soft_mask"] = soft, mask
            if not gold:
                f["labels"] = [-100] * len(feature["labels"])
        out.append(f)
    return out


def soft_train_features(cfg, data: TaskData, tokenizer, max_length: int, train: tuple) -> tuple[tuple, dict]:
    """``(features, owners, stats)`` of the training split with the teacher's logits, followed by the labelled corpus
    examples; and what was done, for metrics.json."""
    features, owners, stats = train
    corpus = corpus_examples(list(cfg.soft_corpus or []), data, cfg.soft_examples)
    if cfg.soft_corpus and not corpus:
        raise EliquareError(f"--soft-corpus {' '.join(cfg.soft_corpus)} holds no usable sentences; check the path")
    label2id = {lab: i for i, lab in enumerate(data.labels)}
    examples = list(data.train) + corpus
    logits = teacher_logits(cfg.soft_teacher, cfg.task, data.labels, examples, max_length, cfg.eval_batch_size)
    gold_logits, corpus_logits = logits[: len(data.train)], logits[len(data.train) :]
    out = attach(cfg.task, features, owners, gold_logits, gold=True)
    c_feats, c_owners, _ = encode(cfg.task, corpus, tokenizer, label2id, max_length)
    out += attach(cfg.task, c_feats, c_owners, corpus_logits, gold=False)
    all_owners = list(owners) + [len(data.train) + o for o in c_owners]
    if cfg.task == "classify":
        gold = [label2id[e.label] for e in data.train]
        predicted = [int(np.argmax(x)) for x in gold_logits]
    else:
        gold = [label2id[t] for e in data.train for t in e.tags]
        predicted = [int(i) for x in gold_logits for i in np.argmax(x, axis=-1)]
    agreement = sum(g == p for g, p in zip(gold, predicted)) / max(1, len(gold))
    summary = {
        "teacher": cfg.soft_teacher,
        "corpus": list(cfg.soft_corpus or []),
        "corpus_examples": len(corpus),
        "train_examples": len(data.train),
        "weight": cfg.soft_weight,
        "temperature": cfg.soft_temperature,
        "teacher_train_accuracy": round(agreement, 4),
    }
    print(
        f"eliquare: soft targets from {cfg.soft_teacher}: {len(data.train)} training examples (teacher accuracy "
        f"{agreement:.3f}) and {len(corpus)} corpus examples; weight {cfg.soft_weight}, temperature "
        f"{cfg.soft_temperature}",
        file=sys.stderr,
        flush=True,
    )
    return (out, all_owners, stats), summary


class SoftTargetCollator:
    """Pads a batch with ``base`` and adds the teacher's logits (``soft_logits``) and where they apply
    (``soft_mask``), padded alike; features without soft targets (dev, test) pass through unchanged."""

    def __init__(self, base, task: str, padding_side: str = "right"):
        self.base, self.task, self.padding_side = base, task, padding_side

    def __call__(self, features):
        import torch

        soft = [f.get("soft_logits") for f in features]
        plain = [{k: v for k, v in f.items() if k not in ("soft_logits", "soft_mask")} for f in features]
        batch = self.base(plain)
        if all(s is None for s in soft):
            return batch
        n_labels = next(s for s in soft if s is not None).shape[-1]
        if self.task == "classify":
            logits = torch.zeros(len(features), n_labels)
            mask = torch.zeros(len(features), dtype=torch.bool)
            for b, s in enumerate(soft):
                if s is not None:
                    logits[b], mask[b] = torch.from_numpy(s), True
        else:
            length = batch["input_ids"].shape[1]
            logits = torch.zeros(len(features), length, n_labels)
            mask = torch.zeros(len(features), length, dtype=torch.bool)
            for b, (f, s) in enumerate(zip(features, soft)):
                if s is None:
                    continue
                n = len(f["input_ids"])
                start = length - n if self.padding_side == "left" else 0
                logits[b, start : start + n] = torch.from_numpy(s)
                mask[b, start : start + n] = torch.from_numpy(f["soft_mask"])
        batch["soft_logits"], batch["soft_mask"] = logits, mask
        return batch


def soft_target_loss(logits, labels, soft_logits, soft_mask, weight: float, temperature: float):
    """CE on the gold labels (-100: none) + weight * T^2 * KL(teacher_T || student_T) where ``soft_mask``; fp32."""
    import torch.nn.functional as F

    logits = logits.float()
    n_labels = logits.shape[-1]
    flat = labels.reshape(-1)
    has_gold = flat != -100
    loss = (
        F.cross_entropy(logits.reshape(-1, n_labels)[has_gold], flat[has_gold])
        if bool(has_gold.any())
        else logits.sum() * 0.0
    )
    if soft_logits is not None and weight > 0 and bool(soft_mask.any()):
        t = temperature
        student = F.log_softmax(logits[soft_mask] / t, dim=-1)
        teacher = F.log_softmax(soft_logits[soft_mask].float() / t, dim=-1)
        loss = loss + weight * t * t * F.kl_div(student, teacher, log_target=True, reduction="batchmean")
    return loss


def soft_target_trainer(trainer_cls, weight: float, temperature: float):
    """``trainer_cls`` whose training loss is ``soft_target_loss``; evaluation batches (no soft targets) get the
    plain cross-entropy."""

    class SoftTargetTrainer(trainer_cls):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs = dict(inputs)
            soft, mask = inputs.pop("soft_logits", None), inputs.pop("soft_mask", None)
            labels = inputs.pop("labels")
            if soft is None and model.training:  # every training feature carries its teacher's logits
                raise RuntimeError("a training batch reached the loss without its soft targets")
            outputs = model(**inputs)
            loss = soft_target_loss(outputs.logits, labels, soft, mask, weight, temperature)
            return (loss, outputs) if return_outputs else loss

    return SoftTargetTrainer
