"""A task's features for fine-tuning: the train, dev and test splits encoded for the model's tokenizer
(``eliquare.tasks.encoding``), with a notice for each split that had to be cut, kept in the cache
(``$ELIQUARE_CACHE/task-encodings``) under a key of everything they follow from.
"""

from __future__ import annotations

from pathlib import Path

from eliquare.atomic import write_json
from eliquare.errors import notice
from eliquare.tasks.encoding import encode
from eliquare.tasks.files import TaskData

ENCODING_CACHE_VERSION = 1  # bump when encode() changes what it returns for the same input


def encoding_cache_dir() -> Path:
    from eliquare.cache import default_cache_dir

    return default_cache_dir() / "task-encodings"


def _encoding_key(cfg, data: TaskData, tokenizer, label2id: dict, max_length: int) -> str:
    """What a task's features follow from: the tokenizer (its whole state), the task, its labels, the length and
    every example of the three splits."""
    import hashlib
    import json

    from eliquare.corpus.cache_entry import tokenizer_fingerprint
    from eliquare.fingerprint import digest

    h = hashlib.blake2b(digest_size=16)
    for split in ("train", "dev", "test"):
        h.update(split.encode())
        for e in getattr(data, split):
            item = [e.text, e.label] if cfg.task == "classify" else [list(e.words), list(e.tags)]
            h.update(json.dumps(item, ensure_ascii=False).encode("utf-8"))
    return digest(
        {
            "version": ENCODING_CACHE_VERSION,
            "task": cfg.task,
            "tokenizer": tokenizer_fingerprint(tokenizer),
            "labels": label2id,
            "max_length": max_length,
            "examples": h.hexdigest(),
        }
    )


def encode_splits(cfg, data: TaskData, tokenizer, max_length: int) -> dict:
    """``{split: (features, owners, stats)}``, with a notice for each split that had to be cut. With
    ``cfg.cache_encodings`` they are kept in the cache (``$ELIQUARE_CACHE/task-encodings``) under a key of
    everything they follow from, and read back by the next job of the same tokenizer and data (another seed, another
    setting of the same model)."""
    import json

    label2id = {lab: i for i, lab in enumerate(data.labels)}
    feats, cached = {}, None
    if cfg.cache_encodings:
        cached = encoding_cache_dir() / f"{_encoding_key(cfg, data, tokenizer, label2id, max_length)}.json"
        try:
            stored = json.loads(cached.read_text(encoding="utf-8"))
            feats = {split: tuple(stored[split]) for split in ("train", "dev", "test")}
        except (OSError, ValueError, KeyError, TypeError):
            feats = {}
    hit = bool(feats)
    for split in ("train", "dev", "test"):
        examples = getattr(data, split)
        if split not in feats:
            feats[split] = encode(cfg.task, examples, tokenizer, label2id, max_length)
        stats = feats[split][2]
        if stats.get("truncated"):
            notice(
                f"{stats['truncated']} of {len(examples)} {split} texts are longer than {max_length} tokens and "
                "were truncated"
            )
        if stats.get("windowed"):
            notice(
                f"{stats['windowed']} of {len(examples)} {split} sentences are longer than {max_length} tokens "
                "and were cut into windows (every word keeps its label)"
            )
        if stats.get("empty_words"):
            notice(f"{stats['empty_words']} {split} words gave no sub-word and were read as the unknown token")
    if cached is not None and not hit:  # (a damaged entry is replaced)
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            write_json(cached, {split: list(v) for split, v in feats.items()}, indent=None)
        except OSError as e:  # a read-only or full cache costs only the time to encode again
            notice(f"task encodings not cached ({e.strerror or e}); encoding again next time")
    return feats
