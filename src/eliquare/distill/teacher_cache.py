"""The teacher's targets computed once: its last hidden states of every corpus sentence, on disk in 16 bits.

A run of several passes otherwise runs the frozen teacher on every batch of every pass, about 40% of a step's
arithmetic for e5-small and a 6-layer student. Here the teacher reads each training and validation sentence once,
before training, and its last-layer states go into one memory-mapped float16 file per split (one row of
``hidden_size`` values per token, the sentences one after another); a batch's targets are gathered from it by the
rows' indices. What the teacher sees is the **unmasked** sentence: its states do not depend on the masks, so masks
stay dynamic (drawn anew for every batch of every pass) and every pass and a ``--resume`` reuse the same file. The
student, reading the masked copy, is pulled towards the teacher's reading of the real text at every position, the
target of data2vec and of the hidden-state term with a teacher that sees the whole sentence.

The file is written under a temporary name and described by ``cache.json`` (written last, with the key of what it
was computed from: the corpus's fingerprint, the teacher, its vocabulary, the precision); a cache whose key differs,
or that is incomplete, is computed again."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

CACHE_DIR_NAME = "teacher-cache"  # in the run's checkpoint directory
_META = "cache.json"
FILL_BATCH_TOKENS = 4096  # tokens per teacher forward while filling (sentences sorted by length: little padding)


def cache_unsupported(objective) -> str | None:
    """Why the cache cannot give this objective's teacher terms (None: it can). It holds last-layer states only."""
    w = objective.weights
    if objective.embedding is not None:
        return "the embedding objective (its pooled targets come from prompted text)"
    if objective.cross is not None:
        return "--vocab-amp (the teacher reads another tokenisation)"
    if objective.hidden_pairs or w.hidden or w.attn or w.value or w.relation:
        return (
            "layer-wise terms (--hidden-layers mapped, --alpha-hidden/attn/value need every layer; --alpha-relation "
            "and --recipe minilmv2 an inner layer's queries, keys and values)"
        )
    return None


@dataclass
class CachedSplit:
    """One split's states: ``states[offsets[row] : offsets[row] + lengths[row]]`` are sentence ``row``'s tokens."""

    states: np.ndarray  # memory-mapped float16 [tokens, hidden]
    offsets: np.ndarray  # int64 [rows]
    lengths: np.ndarray  # int64 [rows]

    def gather(self, rows: torch.Tensor, length: int, device) -> torch.Tensor:
        """The states of sentences ``rows``, padded with zeros to ``length`` positions:
        float32 [batch, length, hidden]."""
        out = np.zeros((len(rows), length, self.states.shape[1]), dtype=np.float16)
        for i, row in enumerate(rows.tolist()):
            n = min(int(self.lengths[row]), length)
            start = int(self.offsets[row])
            out[i, :n] = self.states[start : start + n]
        return torch.from_numpy(out).to(device=device, dtype=torch.float32)


class TeacherCache:
    """The teacher's last hidden states of a run's training and validation sentences (``build`` or ``open``)."""

    def __init__(self, directory: Path, meta: dict):
        self.directory, self.meta = directory, meta
        self.splits = {}
        for name, info in meta["splits"].items():
            lengths = np.load(directory / f"{name}.lengths.npy")
            offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
            states = np.memmap(
                directory / f"{name}.f16",
                dtype=np.float16,
                mode="r",
                shape=(int(info["tokens"]), int(meta["hidden_size"])),
            )
            self.splits[name] = CachedSplit(states, offsets, lengths)

    @staticmethod
    def open(directory: Path, key: dict) -> TeacherCache | None:
        """The cache in ``directory`` if it is complete and was computed from ``key``; else None."""
        try:
            meta = json.loads((directory / _META).read_text(encoding="utf-8"))
            if meta.get("key") != json.loads(json.dumps(key)):
                return None
            cache = TeacherCache(directory, meta)
            for name, info in meta["splits"].items():
                if (directory / f"{name}.f16").stat().st_size != int(info["tokens"]) * meta["hidden_size"] * 2:
                    return None
            return cache
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @staticmethod
    def build(directory: Path, key: dict, teacher, splits: dict, *, bf16: bool, log=print) -> TeacherCache:
        """Run ``teacher`` over every sentence of ``splits`` ({name: dataset with input_ids}) and store its states."""
        from eliquare.atomic import write_json
        from eliquare.models import encoder_of
        from eliquare.training import autocast

        directory.mkdir(parents=True, exist_ok=True)
        (directory / _META).unlink(missing_ok=True)  # incomplete until written again
        device = next(teacher.parameters()).device
        hidden = int(teacher.config.hidden_size)
        encoder = encoder_of(teacher).eval()
        started = time.perf_counter()
        meta: dict[str, Any] = {
            "key": key,
            "hidden_size": hidden,
            "dtype": "float16",
            "teacher_input": "unmasked sentence",
            "splits": {},
        }
        for name, dataset in splits.items():
            ids = dataset["input_ids"]
            lengths = np.array([len(x) for x in ids], dtype=np.int64)
            offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
            total = int(lengths.sum())
            tmp = directory / f".{name}.f16.tmp"
            states = np.memmap(tmp, dtype=np.float16, mode="w+", shape=(max(total, 1), hidden))
            order = np.argsort(lengths, kind="stable")
            largest = 0.0
            i = 0
            while i < len(order):
                longest = int(lengths[order[min(len(order) - 1, i)]])
                take = max(1, FILL_BATCH_TOKENS // max(longest, 1))
                rows = order[i : i + take]
                i += take
                longest = int(lengths[rows].max())
                batch = torch.full((len(rows), longest), 0, dtype=torch.long)
                mask = torch.zeros((len(rows), longest), dtype=torch.long)
                for j, row in enumerate(rows):
                    batch[j, : lengths[row]] = torch.as_tensor(ids[row])
                    mask[j, : lengths[row]] = 1
                with torch.inference_mode(), autocast(bf16, device):
                    out = encoder(input_ids=batch.to(device), attention_mask=mask.to(device)).last_hidden_state
                out = out.float().cpu().numpy()
                largest = max(largest, float(np.abs(out).max()))
                for j, row in enumerate(rows):
                    states[offsets[row] : offsets[row] + lengths[row]] = out[j, : lengths[row]]
            if largest > 6e4:
                raise OverflowError(f"teacher states reach {largest:.3g}, beyond float16; run with --no-teacher-cache")
            states.flush()
            del states
            tmp.replace(directory / f"{name}.f16")
            np.save(directory / f"{name}.lengths.npy", lengths)
            meta["splits"][name] = {"sentences": len(lengths), "tokens": max(total, 1)}
        meta["seconds"] = round(time.perf_counter() - started, 1)
        meta["bytes"] = sum((directory / f"{n}.f16").stat().st_size for n in splits)
        write_json(directory / _META, meta, indent=1)
        return TeacherCache(directory, meta)

    @property
    def megabytes(self) -> float:
        return self.meta["bytes"] / 1e6

    def split(self, name: str) -> CachedSplit:
        return self.splits[name]
