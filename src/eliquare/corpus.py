"""Corpus -> clean sentences -> deterministic 90:10 train/validation split -> cached token ids.

Section 4 of the paper: the student is distilled on target-language text only (the language's
Wikipedia), split 90:10 into train and validation. Everything here streams: a corpus is read
line by line (or page by page for a MediaWiki dump) and written to Arrow files on disk as it goes,
so memory does not grow with the size of the corpus.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import itertools
import json
import lzma
import os
import re
import shutil
import unicodedata
from array import array
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

from eliquare.errors import EliquareError

DATA_FORMAT_VERSION = 2  # bump when the cleaning or tokenisation below changes meaning

_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_SKIP_NAMES = re.compile(r"^(readme|license|licence|copying|citation)\b|^\.", re.IGNORECASE)
_TOKEN_PER_LINE = (".conllu", ".conll", ".bio", ".iob")
# A sentence ends at . ! ? (and the Devanagari danda, Arabic/Urdu stops, ellipsis) followed by space
# and something that can start a sentence; a single capital letter before the stop is an initial.
_SENTENCE_END = re.compile(
    r"(?<![\s.][A-Z][.])(?:(?<=[.!?\u0964\u0965\u06d4\u061f\u2026])|(?<=[.!?\u0964\u0965\u06d4\u061f\u2026][\"'\u201d\u00bb)]))"
    r"\s+(?=[\"'\u201c\u00ab(]*[^\W\d_a-z]|\d)"
)
_SPACES = re.compile(r"\s+")


@dataclass
class CorpusStats:
    """What reading a corpus kept and dropped (shown to the user, stored in distillation.json)."""

    files: int = 0
    lines: int = 0
    undecodable_lines: int = 0
    sentences: int = 0
    too_short: int = 0
    too_long: int = 0
    duplicates: int = 0
    train: int = 0
    validation: int = 0
    skipped_files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# files


def expand_paths(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Files named directly, and every file below a named directory (sorted, hidden files skipped)."""
    if not paths:
        raise EliquareError("no corpus given; pass one or more text files, directories or Wikipedia dumps")
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and not _SKIP_NAMES.match(f.name)
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                raise EliquareError(f"corpus directory {p} holds no files; point --corpus at text files")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise EliquareError(f"corpus file {p} does not exist; check the path given to --corpus")
    return files


def _open_binary(path: Path) -> IO[bytes]:
    opener = _OPENERS.get(path.suffix.lower())
    return opener(path, "rb") if opener else open(path, "rb")


def _is_mediawiki_dump(path: Path) -> bool:
    name = path.name.lower()
    if ".xml" not in name:
        return False
    try:
        with _open_binary(path) as fh:
            head = fh.read(2048)
    except (OSError, EOFError, lzma.LZMAError):
        return False
    return b"<mediawiki" in head


def _plain_name(path: Path) -> str:
    name = path.name.lower()
    for suffix in _OPENERS:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _decoded_lines(path: Path, stats: CorpusStats) -> Iterator[str]:
    """Lines of a (possibly compressed) file; lines that are not UTF-8 are skipped and counted."""
    try:
        with _open_binary(path) as fh:
            for raw in fh:
                stats.lines += 1
                try:
                    yield raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    stats.undecodable_lines += 1
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise EliquareError(f"cannot read corpus file {path} ({e}); is the file complete and not corrupt?") from None


def _token_per_line_texts(lines: Iterable[str]) -> Iterator[str]:
    """CoNLL-U / `token TAG` / `idx token tag` files: rebuild each sentence from its word column."""
    words: list[str] = []
    for line in lines:
        if not line.strip():
            if words:
                yield " ".join(words)
                words = []
            continue
        if line.startswith("#"):
            continue
        cols = line.split("\t") if "\t" in line else line.split()
        if len(cols) >= 2 and re.fullmatch(r"\d+(?:[-.]\d+)?", cols[0]):
            if "-" in cols[0] or "." in cols[0]:
                continue  # multi-word token ranges and empty nodes: the words follow
            words.append(cols[1])
        else:
            words.append(cols[0])
    if words:
        yield " ".join(words)


def _squad_texts(path: Path, stats: CorpusStats) -> Iterator[str]:
    """SQuAD-style JSON (Wikipedia QA sets): the unique paragraph contexts."""
    try:
        with _open_binary(path) as fh:
            data = json.load(io.TextIOWrapper(fh, encoding="utf-8", errors="strict"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        stats.skipped_files.append(str(path))
        return
    seen: set[str] = set()
    articles = data.get("data", []) if isinstance(data, dict) else []
    for article in articles:
        if not isinstance(article, dict):
            continue
        # nested SQuAD (data -> paragraphs -> context) or flat (data -> context), as ParaShoot has it
        for para in article.get("paragraphs", [article]):
            ctx = para.get("context") if isinstance(para, dict) else None
            if isinstance(ctx, str) and ctx not in seen:
                seen.add(ctx)
                yield from ctx.splitlines()
    if not seen:
        stats.skipped_files.append(str(path))


def wikitext_to_text(wikitext: str) -> str:
    """Plain text of one article, by mwparserfromhell: templates, tables, references, headings,
    files and categories go; link texts stay."""
    import mwparserfromhell

    code = mwparserfromhell.parse(wikitext)
    for node in list(code.nodes):
        drop = False
        if isinstance(node, mwparserfromhell.nodes.Heading):
            drop = True
        elif isinstance(node, mwparserfromhell.nodes.Tag) and str(node.tag).lower() in ("ref", "table", "gallery",
                                                                                          "math", "code", "pre"):
            drop = True
        elif isinstance(node, mwparserfromhell.nodes.Wikilink) and ":" in str(node.title).strip(":"):
            drop = True  # File:, Category:, interlanguage links
        if drop:
            try:
                code.remove(node)
            except ValueError:
                pass
    text = code.strip_code(normalize=True, collapse=True)
    return text


def _wiki_texts(path: Path, stats: CorpusStats) -> Iterator[str]:
    """A MediaWiki XML dump, streamed page by page (main namespace, no redirects)."""
    import mwxml

    try:
        with _open_binary(path) as fh:
            dump = mwxml.Dump.from_file(fh)
            for page in dump:
                if page.namespace != 0 or page.redirect:
                    for _ in page:
                        pass
                    continue
                text = None
                for revision in page:
                    text = revision.text  # pages-articles dumps hold one revision; keep the last
                if text:
                    stats.lines += 1
                    yield from wikitext_to_text(text).splitlines()
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise EliquareError(f"cannot read Wikipedia dump {path} ({e}); is the file complete?") from None
    except Exception as e:  # mwxml raises plain errors on malformed XML
        if type(e).__module__.startswith(("xml", "mwxml", "mwtypes")):
            raise EliquareError(f"Wikipedia dump {path} is not well-formed XML ({e}); re-download it") from None
        raise


def iter_texts(path: Path, stats: CorpusStats) -> Iterator[str]:
    """Raw text lines (paragraphs) of one corpus file, whatever its format."""
    name = _plain_name(path)
    if _is_mediawiki_dump(path):
        yield from _wiki_texts(path, stats)
    elif name.endswith(".json"):
        yield from _squad_texts(path, stats)
    elif name.endswith(_TOKEN_PER_LINE):
        yield from _token_per_line_texts(_decoded_lines(path, stats))
    else:
        yield from _decoded_lines(path, stats)


# ---------------------------------------------------------------------------------------------
# sentences


def split_sentences(text: str) -> list[str]:
    """Split a paragraph into sentences at terminal punctuation followed by a likely sentence start."""
    return [s for s in (part.strip() for part in _SENTENCE_END.split(text)) if s]


def clean_sentence(text: str) -> str:
    return _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()


def iter_sentences(paths: Sequence[str | os.PathLike], *, min_words: int = 3, max_chars: int = 2000,
                   split: bool = True, stats: CorpusStats | None = None) -> Iterator[str]:
    """Clean sentences from files, directories, compressed files and MediaWiki dumps, streamed.

    Sentences with fewer than ``min_words`` words or more than ``max_chars`` characters, and text
    without any letter, are dropped (and counted in ``stats``). Duplicates are *not* removed here.
    """
    stats = stats if stats is not None else CorpusStats()
    files = expand_paths(paths)
    for path in files:
        stats.files += 1
        for text in iter_texts(path, stats):
            for sentence in split_sentences(text) if split else [text]:
                sentence = clean_sentence(sentence)
                if not sentence or not any(ch.isalpha() for ch in sentence):
                    continue
                if len(sentence.split()) < min_words:
                    stats.too_short += 1
                    continue
                if len(sentence) > max_chars:
                    stats.too_long += 1
                    continue
                stats.sentences += 1
                yield sentence


def sentence_hash(sentence: str) -> int:
    """A stable 63-bit hash: drives both exact de-duplication and the train/validation split."""
    return int.from_bytes(hashlib.blake2b(sentence.encode("utf-8"), digest_size=8).digest(), "big") >> 1


def is_validation(h, fraction: float):
    # the split depends only on the sentence itself: deterministic, order-free, streamable
    # (``h``: one hash or a numpy array of them)
    return (h % 1_000_003) < fraction * 1_000_003


# ---------------------------------------------------------------------------------------------
# token ids, cached


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


def default_cache_dir() -> Path:
    return Path(os.environ.get("ELIQUARE_CACHE", Path.home() / ".cache" / "eliquare"))


@dataclass
class PreparedCorpus:
    train: object  # datasets.Dataset with input_ids, length
    validation: object
    token_counts: object  # numpy int64 array of size vocab: token frequencies in train (for smoothing)
    stats: CorpusStats
    fingerprint: str
    path: Path


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
                records[bounds[b]:bounds[b + 1]].tofile(fh)
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


def prepare_corpus(paths: Sequence[str | os.PathLike], tokenizer, *, max_length: int = 128, min_words: int = 3,
                   max_chars: int = 2000, validation_fraction: float = 0.1, max_sentences: int | None = None,
                   cache_dir: str | os.PathLike | None = None, log=print) -> PreparedCorpus:
    """Read, clean, de-duplicate, split 90:10 and tokenise a corpus; cached on disk by fingerprint.

    The cache key covers the corpus bytes, the tokenizer and these settings, so an unchanged
    corpus is tokenised once and reused by every later run.
    """
    import datasets
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute  # noqa: F401  (pa.compute)
    from datasets.arrow_writer import ArrowWriter

    files = expand_paths(paths)
    settings = dict(max_length=max_length, min_words=min_words, max_chars=max_chars,
                    validation_fraction=validation_fraction, max_sentences=max_sentences,
                    version=DATA_FORMAT_VERSION)
    key = hashlib.blake2b(json.dumps([file_fingerprint(files), tokenizer_fingerprint(tokenizer), settings],
                                     sort_keys=True).encode(), digest_size=12).hexdigest()
    root = Path(cache_dir) if cache_dir else default_cache_dir() / "corpora"
    target = root / key
    if (target / "done.json").is_file():
        log(f"corpus: reusing tokenised data from {target}")
        return _load_prepared(target, key)

    datasets.disable_progress_bars()
    work = root / f"{key}.partial"
    shutil.rmtree(work, ignore_errors=True)  # what an interrupted run left behind
    work.mkdir(parents=True)
    log(f"corpus: reading {len(files)} file(s)")
    # Every pass below streams an Arrow file with ordinary reads: a memory-mapped Dataset would keep
    # every page a pass touches in this process's RSS, which would then grow with the corpus.
    stats = CorpusStats()
    raw_path = str(work / "raw.arrow")
    spill = HashSpill(work / "hashes")
    with ArrowWriter(features=datasets.Features({"text": datasets.Value("string")}), path=raw_path,
                     writer_batch_size=ARROW_BATCH) as writer:
        sentences = iter_sentences(files, min_words=min_words, max_chars=max_chars, stats=stats)
        for sentence in itertools.islice(sentences, max_sentences):
            writer.write({"text": sentence})
            spill.add(sentence_hash(sentence))
        n_raw, _ = writer.finalize()
    if stats.undecodable_lines:
        log(f"corpus: skipped {stats.undecodable_lines} line(s) that are not valid UTF-8")
    if n_raw == 0:
        raise EliquareError(
            f"the corpus has no usable sentences (read {stats.lines} lines from {stats.files} file(s), "
            f"{stats.undecodable_lines} not UTF-8, {stats.too_short} shorter than {min_words} words); "
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

    # one pass over the raw table: tokenise, write each sentence to its split, count train tokens
    counts = np.zeros(len(tokenizer), dtype=np.int64)
    features = datasets.Features({"input_ids": datasets.List(datasets.Value("int32")),
                                  "length": datasets.Value("int64")})
    writers = {split: ArrowWriter(features=features, path=str(work / f"{split}.arrow")) for split in SPLITS}
    pending = {split: [] for split in SPLITS}  # tokenised tables not yet written, so record batches are large
    pending_tokens = dict.fromkeys(SPLITS, 0)

    def write_pending(split: str) -> None:
        if pending[split]:
            table = pa.concat_tables(pending[split])
            writers[split].write_table(table, writer_batch_size=table.num_rows)  # one record batch
            pending[split], pending_tokens[split] = [], 0

    start = 0
    for batch in _arrow_batches(raw_path, ["text"]):
        where = split_of[start:start + batch.num_rows]
        start += batch.num_rows
        for code, split in enumerate(SPLITS, 1):
            rows = np.flatnonzero(where == code)
            if not len(rows):
                continue
            ids = tokenizer(batch.column("text").take(rows).to_pylist(), truncation=True, max_length=max_length,
                            return_attention_mask=False, return_token_type_ids=False)["input_ids"]
            column = pa.array(ids, type=pa.list_(pa.int32()))
            pending[split].append(pa.table({"input_ids": column, "length": pa.compute.list_value_length(column)
                                            .cast(pa.int64())}))
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
    np.save(work / "token_counts.npy", counts)
    (work / "done.json").write_text(json.dumps({"fingerprint": key, "stats": stats.as_dict(),
                                                "settings": settings}, indent=1))
    os.remove(raw_path)
    if target.exists():
        shutil.rmtree(target)
    work.rename(target)
    log(f"corpus: {stats.train} train / {stats.validation} validation sentences "
        f"({stats.duplicates} duplicates dropped), cached in {target}")
    return _load_prepared(target, key)


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
