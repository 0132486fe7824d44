"""Preparing a corpus: clean sentences -> exact de-duplication -> 90:10 split -> cached token ids.

Everything streams: sentences are written to Arrow files on disk as they are read, and the
de-duplication and split are done in buckets on disk (``eliquare.corpus.dedup.HashSpill``), so memory does not grow
with the size of the corpus. The result is cached by a fingerprint of the corpus bytes, the tokenizer and
the options (``eliquare.corpus.cache_entry``), and reused by every later run (``distill`` and ``teacher fit-head``
alike).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from eliquare.cache import default_cache_dir
from eliquare.config import CorpusOptions
from eliquare.corpus.cache_entry import (
    CorpusLock,
    PreparedCorpus,
    cache_key,
    damaged_entry,
    load_prepared,
    write_done,
)
from eliquare.corpus.dedup import HashSpill
from eliquare.corpus.read import CorpusStats, expand_paths, iter_sentences, sentence_hash
from eliquare.errors import EliquareError

DATA_FORMAT_VERSION = 3  # bump when the cleaning (corpus.read) or the tokenisation below changes meaning


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
    key = cache_key(files, tokenizer, settings)
    root = Path(cache_dir) if cache_dir else default_cache_dir() / "corpora"
    target = root / key
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = CorpusLock(root / f"{key}.lock", log)
    except OSError as e:  # a cache we may read but not write (shared, read-only): a complete entry is still used
        if target.exists() and damaged_entry(target) is None:
            log(f"corpus: reusing tokenised data from {target} (a read-only cache)")
            return load_prepared(target, key)
        raise EliquareError(
            f"cannot write the corpus cache {root} ({e.strerror or e}); give --cache-dir DIR (or set "
            "ELIQUARE_CACHE) to a directory you can write to"
        ) from None
    with lock:  # one process prepares a corpus at a time; another one preparing the same corpus waits, then reuses it
        if target.exists():
            damage = damaged_entry(target)
            if damage is None:
                log(f"corpus: reusing tokenised data from {target}")
                return load_prepared(target, key)
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
    write_done(work, key, stats, settings)
    work.rename(target)
    log(
        f"corpus: {stats.train} train / {stats.validation} validation sentences "
        f"({stats.duplicates} duplicates dropped), cached in {target}"
    )
    return load_prepared(target, key)


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
    # tokenised tables not yet written, so record batches are large
    pending: dict[str, list] = {split: [] for split in SPLITS}
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
