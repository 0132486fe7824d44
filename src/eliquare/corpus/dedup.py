"""Exact de-duplication and the 90:10 train/validation split of a corpus's sentences, on disk (``HashSpill``), so
that memory does not grow with the size of the corpus. Each sentence is known by its hash (``sentence_hash``);
the first occurrence of a hash is kept and sent to train or validation by the hash (``is_validation``)."""

from __future__ import annotations

from array import array
from pathlib import Path

from eliquare.corpus.read import is_validation


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
