"""A prepared corpus's cache entry: its key (a fingerprint of the corpus bytes, the tokenizer and the settings), the
lock that lets one process prepare it at a time, ``done.json`` (written last, with the size and checksum of every
file a run reads), the check that an entry is complete (``damaged_entry``) and the loading of one
(``load_prepared``). An entry is built in ``KEY.partial`` and renamed into place once complete
(``eliquare.corpus.prepare``)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eliquare.atomic import file_checksum as _checksum
from eliquare.corpus.read import CorpusStats

if TYPE_CHECKING:
    import numpy as np


def file_fingerprint(files: Sequence[Path]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for f in files:
        h.update(str(f.resolve()).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)  # set and reset by every call with truncation=True: not the vocabulary
        state.pop("padding", None)
        payload = json.dumps(state, sort_keys=True)
    else:
        payload = json.dumps(tokenizer.get_vocab(), sort_keys=True)
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def cache_key(files: Sequence[Path], tokenizer, settings: dict) -> str:
    """The entry's name: a fingerprint of the corpus bytes, the tokenizer and ``settings``."""
    return hashlib.blake2b(
        json.dumps([file_fingerprint(files), tokenizer_fingerprint(tokenizer), settings], sort_keys=True).encode(),
        digest_size=12,
    ).hexdigest()


@dataclass
class PreparedCorpus:
    train: Any  # datasets.Dataset with input_ids, length
    validation: Any
    token_counts: np.ndarray  # numpy int64 array of size vocab: token frequencies in train (for smoothing)
    stats: CorpusStats
    fingerprint: str
    path: Path
    languages: dict | None = None  # a corpus of several languages: each one's sentences and share (corpus.languages)


CACHE_FILES = ("train.arrow", "validation.arrow", "token_counts.npy")  # checksummed in done.json


class CorpusLock:
    """An exclusive lock on ``KEY.lock`` (``flock``: the kernel releases it when its holder dies, even by kill -9);
    made on entering ``prepare_corpus``'s ``with``, released when the descriptor is closed."""

    def __init__(self, path: Path, log):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # OSError: the cache cannot be written
        try:
            import fcntl
        except ImportError:  # no flock (Windows): one process at a time is up to the user
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"corpus: another process is preparing the same corpus ({path}); waiting for it")
            fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def damaged_entry(target: Path) -> str | None:
    """None for a complete cache entry; else what is wrong with it. ``done.json`` is written last (and the entry
    renamed into place after it), with the size and checksum of every file a run reads."""
    try:
        info = json.loads((target / "done.json").read_text())
    except (OSError, ValueError):
        return "no readable done.json: it was not finished"
    files = info.get("files") if isinstance(info, dict) else None
    if not isinstance(files, dict):  # an entry of an earlier eliquare: see whether it loads
        try:
            load_prepared(target, target.name)
        except Exception as e:  # noqa: BLE001 - any failure to load means: make it again
            return f"it does not load: {type(e).__name__}"
        return None
    for name in CACHE_FILES:
        f = target / name
        if name not in files or not f.is_file():
            return f"{name} is missing"
        size, checksum = files[name]
        if f.stat().st_size != size:
            return f"{name} has {f.stat().st_size} bytes, {size} when it was written"
        if _checksum(f) != checksum:
            return f"{name} has changed since it was written (checksum)"
    return None


def write_done(work: Path, key: str, stats: CorpusStats, settings: dict) -> None:
    """``done.json``, by a temporary name: the entry's fingerprint, statistics, settings, and each file's size and
    checksum."""
    done = {
        "fingerprint": key,
        "stats": stats.as_dict(),
        "settings": settings,
        "files": {name: [(work / name).stat().st_size, _checksum(work / name)] for name in CACHE_FILES},
    }
    (work / ".done.json.tmp").write_text(json.dumps(done, indent=1))
    os.replace(work / ".done.json.tmp", work / "done.json")


def load_prepared(target: Path, key: str) -> PreparedCorpus:
    import datasets
    import numpy as np

    info = json.loads((target / "done.json").read_text())
    return PreparedCorpus(
        train=datasets.Dataset.from_file(str(target / "train.arrow")),
        validation=datasets.Dataset.from_file(str(target / "validation.arrow")),
        token_counts=np.load(target / "token_counts.npy"),
        stats=CorpusStats(**info["stats"]),
        fingerprint=key,
        path=target,
    )
