"""Preparing a corpus: clean sentences -> exact de-duplication -> 90:10 split -> cached token ids.

Everything streams: sentences are written to Arrow files on disk as they are read, and the
de-duplication and split are done in buckets on disk (``HashSpill``), so memory does not grow with
the size of the corpus. The result is cached by a fingerprint of the corpus bytes, the tokenizer and
the options, and reused by every later run (``distill`` and ``teacher fit-head`` alike).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from eliquare.atomic import file_checksum as _checksum
from eliquare.cache import default_cache_dir
from eliquare.config import CorpusOptions
from eliquare.corpus.read import CorpusStats, expand_paths, is_validation, iter_sentences, sentence_hash
from eliquare.errors import EliquareError

DATA_FORMAT_VERSION = 3  # bump when the cleaning (corpus.read) or the tokenisation below changes meaning


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


@dataclass
class PreparedCorpus:
    train: object  # datasets.Dataset with input_ids, length
    validation: object
    token_counts: object  # numpy int64 array of size vocab: token frequencies in train (for smoothing)
    stats: CorpusStats
    fingerprint: str
    path: Path
    languages: dict | None = None  # a corpus of several languages: each one's sentences and share (corpus.languages)


class HashSpill:
    """Exact de-duplication and the train/validation split, with memory that does not grow with the corpus.

    Each sentence's hash is appended, with its row number, to one of 256 bucket files on disk (by the
    hash's top bits). ``splits`` then reads one bucket at a time, keeps the first row of every hash and
    sends it to train or validation by ``is_validation``. What stays in memory is one byte per
    sentence (its split: 0 duplicate, 1 train, 2 validation) and one bucket at a time: 16 bytes for
    each of 1/256 of the sentences, instead of ~40 bytes for every sentence to sort them all at once.
    """

    BUCKET_BITS = 8
    CHUNK = 1 << 18  # hashes buffered before they are spilled to their buckets
    _RECORD = [("hash", "<i8"), ("row", "<i8")]

    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.rows = 0
        self._buffer = array("q")

    def add(self, h: int) -> None:
        self._buffer.append(h)
        if len(self._buffer) >= self.CHUNK:
            self._spill()

    def _spill(self) -> None:
        import numpy as np

        if not self._buffer:
            return
        hashes = np.frombuffer(self._buffer, dtype=np.int64)
        bucket = hashes >> (63 - self.BUCKET_BITS)
        order = np.argsort(bucket, kind="stable")  # stable: rows stay ascending inside each bucket
        records = np.empty(len(hashes), dtype=self._RECORD)
        records["hash"], records["row"] = hashes[order], self.rows + order
        bounds = np.searchsorted(bucket[order], np.arange((1 << self.BUCKET_BITS) + 1))
        for b in np.flatnonzero(np.diff(bounds)):
            with open(self.directory / f"{b:03d}.bin", "ab") as fh:
                records[bounds[b] : bounds[b + 1]].tofile(fh)
        self.rows += len(hashes)
        self._buffer = array("q")

    def splits(self, fraction: float):
        """Per row, in order: 0 duplicate of an earlier row, 1 train, 2 validation (numpy int8)."""
        import numpy as np

        self._spill()
        split_of = np.zeros(self.rows, dtype=np.int8)
        for path in sorted(self.directory.glob("*.bin")):
            records = np.fromfile(path, dtype=self._RECORD)
            # rows ascend within a bucket, so after a stable sort by hash each hash's first row leads its run
            order = np.argsort(records["hash"], kind="stable")
            hashes = records["hash"][order]
            first = order[np.concatenate(([True], hashes[1:] != hashes[:-1]))]
            split_of[records["row"][first]] = np.where(is_validation(records["hash"][first], fraction), 2, 1)
            path.unlink()
        return split_of


SPLITS = ("train", "validation")
# Rows per record batch of the raw sentence file, and tokens per record batch of the tokenised files.
# Loading a memory-mapped Arrow file touches ~40-60 kB of pages per record batch, so small batches
# (datasets' default is 1,000 rows) would put a share of the tokenised corpus in RSS at load time:
# one batch per 4 M tokens (16 MB of ids) keeps that to a few MB for a 1 GB corpus.
ARROW_BATCH = 10_000
OUT_BATCH_TOKENS = 1 << 22


def _arrow_batches(path: str, columns: list[str]):
    """Record batches of an Arrow stream file (as ``ArrowWriter`` writes it), read with ordinary file reads."""
    import pyarrow as pa

    with pa.OSFile(path) as source:
        for batch in pa.ipc.open_stream(source):
            yield batch.select(columns)


def prepare_corpus(
    paths: Sequence[str | os.PathLike],
    tokenizer,
    options: CorpusOptions | None = None,
    *,
    max_length: int = 128,
    validation_fraction: float = 0.1,
    cache_dir: str | os.PathLike | None = None,
    log=print,
) -> PreparedCorpus:
    """Read, clean, de-duplicate, split 90:10 and tokenise a corpus; cached on disk by fingerprint.

    The cache key covers the corpus bytes, the tokenizer and these settings, so an unchanged
    corpus is tokenised once and reused by every later run.
    """
    options = options or CorpusOptions()
    files = expand_paths(paths)
    settings = dict(
        max_length=max_length,
        min_words=options.min_words,
        max_chars=options.max_chars,
        validation_fraction=validation_fraction,
        max_sentences=options.max_sentences,
        version=DATA_FORMAT_VERSION,
    )
    key = hashlib.blake2b(
        json.dumps([file_fingerprint(files), tokenizer_fingerprint(tokenizer), settings], sort_keys=True).encode(),
        digest_size=12,
    ).hexdigest()
    root = Path(cache_dir) if cache_dir else default_cache_dir() / "corpora"
    target = root / key
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = _CorpusLock(root / f"{key}.lock", log)
    except OSError as e:  # a cache we may read but not write (shared, read-only): a complete entry is still used
        if target.exists() and damaged_entry(target) is None:
            log(f"corpus: reusing tokenised data from {target} (a read-only cache)")
            return _load_prepared(target, key)
        raise EliquareError(
            f"cannot write the corpus cache {root} ({e.strerror or e}); give --cache-dir DIR (or set "
            "ELIQUARE_CACHE) to a directory you can write to"
        ) from None
    with lock:  # one process prepares a corpus at a time; another one preparing the same corpus waits, then reuses it
        if target.exists():
            damage = damaged_entry(target)
            if damage is None:
                log(f"corpus: reusing tokenised data from {target}")
                return _load_prepared(target, key)
            log(f"notice: corpus: the cached data in {target} is damaged ({damage}); preparing it again")
            shutil.rmtree(target)
        return _prepare(
            files,
            tokenizer,
            options,
            settings,
            key,
            root,
            target,
            max_length=max_length,
            validation_fraction=validation_fraction,
            log=log,
        )


CACHE_FILES = ("train.arrow", "validation.arrow", "token_counts.npy")  # checksummed in done.json


class _CorpusLock:
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
            _load_prepared(target, target.name)
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


def _prepare(
    files,
    tokenizer,
    options: CorpusOptions,
    settings: dict,
    key: str,
    root: Path,
    target: Path,
    *,
    max_length: int,
    validation_fraction: float,
    log,
) -> PreparedCorpus:
    """Build the cache entry in ``KEY.partial`` and rename it into place once ``done.json`` is in it."""
    import datasets
    import numpy as np

    datasets.disable_progress_bars()
    work = root / f"{key}.partial"
    shutil.rmtree(work, ignore_errors=True)  # what an interrupted run left behind (we hold the lock)
    work.mkdir(parents=True)
    log(f"corpus: reading {len(files)} file(s)")
    # Every pass below streams an Arrow file with ordinary reads: a memory-mapped Dataset would keep
    # every page a pass touches in this process's RSS, which would then grow with the corpus.
    stats = CorpusStats()
    raw_path = work / "raw.arrow"
    split_of = _write_sentences(files, options, raw_path, work / "hashes", validation_fraction, stats, log)
    counts = _tokenise_splits(raw_path, split_of, tokenizer, max_length, work, stats)
    np.save(work / "token_counts.npy", counts)
    os.remove(raw_path)
    done = {
        "fingerprint": key,
        "stats": stats.as_dict(),
        "settings": settings,
        "files": {name: [(work / name).stat().st_size, _checksum(work / name)] for name in CACHE_FILES},
    }
    (work / ".done.json.tmp").write_text(json.dumps(done, indent=1))
    os.replace(work / ".done.json.tmp", work / "done.json")
    work.rename(target)
    log(
        f"corpus: {stats.train} train / {stats.validation} validation sentences "
        f"({stats.duplicates} duplicates dropped), cached in {target}"
    )
    return _load_prepared(target, key)


def _write_sentences(
    files: list[Path],
    options: CorpusOptions,
    raw_path: Path,
    hash_dir: Path,
    validation_fraction: float,
    stats: CorpusStats,
    log,
):
    """Stream the clean sentences into ``raw_path``; returns each row's split (0 duplicate, 1 train, 2 validation)."""
    import datasets
    from datasets.arrow_writer import ArrowWriter

    spill = HashSpill(hash_dir)
    with ArrowWriter(
        features=datasets.Features({"text": datasets.Value("string")}),
        path=str(raw_path),
        writer_batch_size=ARROW_BATCH,
    ) as writer:
        for sentence in iter_sentences(files, options, stats=stats):
            writer.write({"text": sentence})
            spill.add(sentence_hash(sentence))
        n_raw, _ = writer.finalize()
    if stats.undecodable_lines:
        log(f"corpus: skipped {stats.undecodable_lines} line(s) that are not valid UTF-8")
    if n_raw == 0:
        raise EliquareError(
            f"the corpus has no usable sentences (read {stats.lines} lines from {stats.files} file(s), "
            f"{stats.undecodable_lines} not UTF-8, {stats.too_short} shorter than {options.min_words} words); "
            "give UTF-8 text in the target language"
        )
    split_of = spill.splits(validation_fraction)  # exact de-duplication (first occurrence kept) and the split
    n_train, n_val = int((split_of == 1).sum()), int((split_of == 2).sum())
    stats.duplicates = n_raw - n_train - n_val
    if n_train == 0 or n_val == 0:
        raise EliquareError(
            f"the corpus has only {n_train + n_val} distinct sentence(s), too few for a train/validation split; "
            "give more text (a few hundred sentences at least)"
        )
    return split_of


def _tokenise_splits(raw_path: Path, split_of, tokenizer, max_length: int, work: Path, stats: CorpusStats):
    """One pass over the raw sentences: tokenise, write each to its split's Arrow file; returns train token counts."""
    import datasets
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute  # noqa: F401  (pa.compute)
    from datasets.arrow_writer import ArrowWriter

    counts = np.zeros(len(tokenizer), dtype=np.int64)
    features = datasets.Features(
        {"input_ids": datasets.List(datasets.Value("int32")), "length": datasets.Value("int64")}
    )
    writers = {split: ArrowWriter(features=features, path=str(work / f"{split}.arrow")) for split in SPLITS}
    pending = {split: [] for split in SPLITS}  # tokenised tables not yet written, so record batches are large
    pending_tokens = dict.fromkeys(SPLITS, 0)

    def write_pending(split: str) -> None:
        if pending[split]:
            table = pa.concat_tables(pending[split])
            writers[split].write_table(table, writer_batch_size=table.num_rows)  # one record batch
            pending[split], pending_tokens[split] = [], 0

    start = 0
    for batch in _arrow_batches(str(raw_path), ["text"]):
        where = split_of[start : start + batch.num_rows]
        start += batch.num_rows
        for code, split in enumerate(SPLITS, 1):
            rows = np.flatnonzero(where == code)
            if not len(rows):
                continue
            ids = tokenizer(
                batch.column("text").take(rows).to_pylist(),
                truncation=True,
                max_length=max_length,
                return_attention_mask=False,
                return_token_type_ids=False,
            )["input_ids"]
            column = pa.array(ids, type=pa.list_(pa.int32()))
            pending[split].append(
                pa.table({"input_ids": column, "length": pa.compute.list_value_length(column).cast(pa.int64())})
            )
            if split == "train":
                counts += np.bincount(column.values.to_numpy(), minlength=len(counts))[: len(counts)]
            pending_tokens[split] += len(column.values)
            if pending_tokens[split] >= OUT_BATCH_TOKENS:
                write_pending(split)
    for split in SPLITS:
        write_pending(split)
    for split, writer in writers.items():
        n, _ = writer.finalize()  # closes the file
        setattr(stats, split, n)
    return counts


def _load_prepared(target: Path, key: str) -> PreparedCorpus:
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
