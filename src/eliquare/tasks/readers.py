"""Readers for the formats downstream datasets come in, and the train/dev/test split logic.

Token tasks (``pos``, ``ner``):

- CoNLL-U: one word per line, 10 tab-separated columns. POS reads UPOS (column 4); NER reads the
  ``NER=`` key of MISC (column 10). Multi-word token lines (``1-2``) and empty nodes (``1.1``) are
  skipped: the syntactic words are what gets labelled.
- token-per-line BIO files: ``token TAG`` (space or tab separated), ``idx<TAB>token<TAB>tag``
  (a leading index column), or CoNLL-2003 style ``token POS CHUNK TAG`` (the tag is the last column).
  Sentences are separated by blank lines; ``-DOCSTART-`` lines are skipped.

Documents: a CoNLL-U ``# newdoc`` comment or a ``-DOCSTART-`` line starts a document, and every sentence
remembers its own (``TokenExample.document``). Some corpora annotate entities in only part of their documents
and leave every word of the others ``O`` (UD Slovenian-SSJ's ``NER=`` layer covers 14 of the 74 documents of its
dev file): trained on those, a tagger learns that names are ``O``. ``documents="annotated"`` keeps the documents
that hold at least one entity; without it, such a file gets a notice (``partial_annotation_notice``).

Sentence tasks (``classify``): TSV / CSV (quoted fields allowed) and JSON lines. The label and the
text column(s) are chosen by name or 0-based index; several text columns are joined with a space.

Every example remembers the file and the line it came from, so that errors can name both.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from eliquare.conll import CONLLU_COLUMNS, read_sentences
from eliquare.errors import EliquareError, notice

TASKS = ("pos", "ner", "classify")

# The 17 Universal POS tags of UD v2: the label inventory of POS from CoNLL-U.
UPOS = (
    "ADJ",
    "ADP",
    "ADV",
    "AUX",
    "CCONJ",
    "DET",
    "INTJ",
    "NOUN",
    "NUM",
    "PART",
    "PRON",
    "PROPN",
    "PUNCT",
    "SCONJ",
    "SYM",
    "VERB",
    "X",
)

# header names taken as the label column when none is given
LABEL_NAMES = (
    "label",
    "labels",
    "category",
    "class",
    "topic",
    "topic_label",
    "sentiment",
    "polarity",
    "target",
    "tag",
    "y",
    "gold",
)
# header names never taken as text when the text columns are not given
NOT_TEXT_NAMES = ("id", "idx", "index", "url", "link", "guid", "uid", "uuid", "date")

_BIO_TAG = re.compile(r"^(O|[BIES]-\S+)$")

Column = Union[int, str]


@dataclass
class TokenExample:
    """One sentence of a token task: words and one tag per word."""

    words: list[str]
    tags: list[str]
    source: str
    line: int  # 1-based line of the first word
    lines: list[int] = field(default_factory=list)  # the line of each word
    document: Optional[str] = None  # the document it belongs to (# newdoc id, -DOCSTART-); None: the file has none


@dataclass
class TextExample:
    """One example of a sentence-level task."""

    text: str
    label: str
    source: str
    line: int  # 1-based line where the record starts


Example = Union[TokenExample, TextExample]


@dataclass
class TaskData:
    """The three splits of one dataset, its label inventory and how the splits were made."""

    task: str
    train: list
    dev: list
    test: list
    labels: list[str]
    split: str  # how the splits came about, in words
    files: dict = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)  # what a user should hear about the data (printed by finetune)


# ---------------------------------------------------------------------------------------------
# helpers


def _check_file(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise EliquareError(f"{what} file {p} does not exist; check the path")
    if not p.is_file():
        raise EliquareError(f"{what} file {p} is not a file; give the path of a data file")
    return p


_NEWLINE = re.compile(r"\r\n|\r|\n")  # what the csv module and editors count as line ends (not str.splitlines's
# \x0b, \x0c, \x1c-\x1e, \x85, \u2028, \u2029: with those, every error after one named the wrong line)


def _read_text(path: Path) -> str:
    """The file's text (a UTF-8 byte-order mark dropped); bytes that are not UTF-8 are one line naming their line."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise EliquareError(f"cannot read {path} ({e.strerror}); check the path and its permissions") from None
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as e:
        at = start + e.start
        line = len(_NEWLINE.findall(data[:at].decode("latin-1"))) + 1
        raise EliquareError(f"{path}, line {line}: not UTF-8 text (byte {at}); convert the file to UTF-8") from None


def _read_lines(path: Path) -> list[str]:
    lines = _NEWLINE.split(_read_text(path))
    return lines[:-1] if lines[-1] == "" else lines


def _columns_shown(name: str) -> str:
    """A column name or label as it reads (plain), unless it would break the one line of a message."""
    return name if name.isprintable() and len(name) <= 40 else _shown(name, 44)


def _shown(value, limit: int = 60) -> str:
    """A value from the file in a message: quoted, control characters escaped (the message stays one line), cut."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _is_int(s: str) -> bool:
    return s.isdigit()


def check_bio(tag: str, path: Path | str, line: int) -> None:
    if not _BIO_TAG.match(tag):
        raise EliquareError(
            f"{path}, line {line}: tag {_shown(tag)} is not a BIO tag (O, B-TYPE or I-TYPE); fix the file, "
            "or use --task pos for other tag sets"
        )


# ---------------------------------------------------------------------------------------------
# token tasks


def sniff_token_format(path: Path) -> str:
    """``conllu`` when the first word line has 10 tab-separated columns or the file opens with
    ``#`` comments (as CoNLL-U does); ``bio`` otherwise. The extension is not trusted: WikiNEuRal
    ships ``idx<TAB>token<TAB>tag`` files named ``.conllu``."""
    for raw in _read_lines(path)[:200]:
        line = raw.strip("\r\n")
        if not line.strip():
            continue
        if line.startswith("#"):
            return "conllu"
        return "conllu" if len(line.split("\t")) >= 7 else "bio"
    return "conllu" if path.suffix.lower() == ".conllu" else "bio"  # no word line at all: go by the name


def _documents_by_line(raw: list[str], conllu: bool) -> list[Optional[str]]:
    """The document of each line (0-based index): a CoNLL-U ``# newdoc [id = X]`` comment or a ``-DOCSTART-`` line
    starts one; the name is the id where there is one, else ``document N``. All None when the file marks none."""
    names: list[Optional[str]] = []
    current: Optional[str] = None
    count = 0
    for line in raw:
        text = line.strip()
        starts = text.startswith("# newdoc") if conllu else text.startswith("-DOCSTART-")
        if starts:
            count += 1
            _, _, ident = text.partition("=") if conllu else ("", "", "")
            current = ident.strip() or f"document {count}"
        names.append(current)
    return names


def _conllu_tag(cols: list[str], task: str, p: Path, n: int) -> str:
    """UPOS (column 4) for ``pos``; the ``NER=`` key of MISC (column 10) for ``ner``."""
    if task != "ner":
        tag = cols[3]
        if tag in ("", "_"):
            raise EliquareError(f"{p}, line {n}: the word has no UPOS tag (column 4 is {_shown(tag)}); fix the line")
        return tag
    for item in cols[9].split("|"):
        key, _, value = item.partition("=")
        if key == "NER":
            check_bio(value, p, n)
            return value
    raise EliquareError(
        f"{p}, line {n}: no NER= key in the MISC column; NER from CoNLL-U needs NER=B-TYPE, "
        "NER=I-TYPE or NER=O on every word (or use --task pos)"
    )


def read_conllu(path: str | Path, task: str = "pos") -> list[TokenExample]:
    """Read a CoNLL-U file: UPOS tags for ``pos``, ``NER=`` in MISC for ``ner``."""
    p = _check_file(path, "CoNLL-U")
    sentences: list[TokenExample] = []
    raw = _read_lines(p)
    documents = _documents_by_line(raw, conllu=True)
    for sentence in read_sentences(raw, conllu=True):
        words, tags, lines = [], [], []
        for n, cols in sentence:
            if len(cols) != CONLLU_COLUMNS:
                spaces = any(" " in c for c in cols)
                hint = " (spaces instead of tabs?)" if len(cols) < CONLLU_COLUMNS and spaces else ""
                raise EliquareError(
                    f"{p}, line {n}: a CoNLL-U word line needs 10 tab-separated columns, this one has {len(cols)}"
                    f"{hint}; fix the line"
                )
            wid = cols[0]
            if "-" in wid or "." in wid:  # read_sentences skips well-formed ranges and empty nodes
                raise EliquareError(f"{p}, line {n}: {_shown(wid)} is not a CoNLL-U word ID; fix the line")
            if not _is_int(wid):
                raise EliquareError(
                    f"{p}, line {n}: {_shown(wid)} is not a CoNLL-U word ID (1, 2, ... or 1-2 or 1.1); fix the line"
                )
            tags.append(_conllu_tag(cols, task, p, n))
            words.append(cols[1])
            lines.append(n)
        sentences.append(TokenExample(words, tags, str(p), lines[0], lines, documents[lines[0] - 1]))
    if not sentences:
        raise EliquareError(f"{p} holds no sentences; give a non-empty CoNLL-U file")
    return sentences


def read_bio(path: str | Path, task: str = "ner") -> list[TokenExample]:
    """Read a token-per-line file: ``token TAG``, ``idx<TAB>token<TAB>TAG`` or ``token ... TAG``."""
    p = _check_file(path, "token-per-line")
    raw = _read_lines(p)
    # no comments (a '#' line is the token '#'), no CoNLL-U ranges; -DOCSTART- lines end a sentence
    sentences = [
        [(n, [c.strip() for c in cols]) for n, cols in sentence]
        for sentence in read_sentences(raw, comments=False, skip_nodes=False, docstart=True)
    ]
    for sentence in sentences:
        for n, cols in sentence:
            if len(cols) < 2 or not cols[-1]:
                raise EliquareError(
                    f"{p}, line {n}: expected a token and a tag separated by a space or a tab, "
                    f"found {_shown(raw[n - 1])}; "
                    "fix the line"
                )
    if not sentences:
        raise EliquareError(f"{p} holds no tokens; give a non-empty token-per-line file")
    # a leading index column: every line has 3+ columns and an integer first column
    indexed = all(len(c) >= 3 and _is_int(c[0]) for sentence in sentences for _, c in sentence)
    documents = _documents_by_line(raw, conllu=False)
    examples: list[TokenExample] = []
    for sentence in sentences:
        words = [cols[1] if indexed else cols[0] for _, cols in sentence]
        tags = [cols[-1] for _, cols in sentence]
        lines = [n for n, _ in sentence]
        if task == "ner":
            for tag, n in zip(tags, lines):
                check_bio(tag, p, n)
        examples.append(TokenExample(words, tags, str(p), lines[0], lines, documents[lines[0] - 1]))
    return examples


def read_token_file(path: str | Path, task: str, fmt: str = "auto") -> list[TokenExample]:
    p = _check_file(path, "data")
    if fmt == "auto":
        fmt = sniff_token_format(p)
    if fmt == "conllu":
        return read_conllu(p, task)
    if fmt == "bio":
        return read_bio(p, task)
    raise EliquareError(f"format {fmt!r} does not hold token labels; use conllu, bio or auto for --task {task}")


# ---------------------------------------------------------------------------------------------
# sentence classification


def parse_column(value: Column | None) -> Column | None:
    """``"2"`` -> 2 (an index), ``"label"`` -> "label" (a name)."""
    if value is None or isinstance(value, int):
        return value
    s = str(value).strip()
    if re.fullmatch(r"-?\d+", s):
        return int(s)
    return s


def sniff_table_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "json"
    if suffix == ".csv":
        return "csv"
    if suffix == ".tsv":
        return "tsv"
    for raw in _read_lines(path)[:5]:
        if raw.strip():
            if raw.lstrip().startswith("{"):
                return "jsonl"
            return "tsv" if "\t" in raw else "csv"
    return "tsv"


def _read_rows(path: Path, fmt: str) -> tuple[list[tuple[int, list[str]]], Optional[list[str]]]:
    """Rows with their starting line number; for JSON, the keys act as a header."""
    rows: list[tuple[int, list[str]]] = []
    if fmt in ("tsv", "csv"):
        delimiter = "\t" if fmt == "tsv" else ","
        csv.field_size_limit(1 << 30)
        reader = csv.reader(io.StringIO(_read_text(path), newline=""), delimiter=delimiter)
        try:
            prev = 0
            for row in reader:
                start = prev + 1
                prev = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                rows.append((start, [c.strip() for c in row]))
        except csv.Error as e:
            raise EliquareError(
                f"{path}, line {reader.line_num}: cannot parse the {fmt.upper()} ({e}); fix the file"
            ) from None
        return rows, None
    # JSON lines (or a JSON list of objects)
    records: list[tuple[int, dict]] = []
    if fmt == "json":
        try:
            data = json.loads("\n".join(_read_lines(path)) or "[]")
        except json.JSONDecodeError as e:
            raise EliquareError(f"{path}, line {e.lineno}: not valid JSON ({e.msg}); fix the file") from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise EliquareError(f"{path}: a JSON data file must hold a list of objects (or use JSON lines)")
        records = [(i + 1, r) for i, r in enumerate(data)]
    else:
        for n, raw in enumerate(_read_lines(path), start=1):
            if not raw.strip():
                continue
            try:
                records.append((n, json.loads(raw)))
            except json.JSONDecodeError as e:
                raise EliquareError(f"{path}, line {n}: not valid JSON ({e.msg}); fix the line") from None
    keys: list[str] = []
    for n, rec in records:
        if not isinstance(rec, dict):
            raise EliquareError(f"{path}, line {n}: expected a JSON object with label and text fields")
        for k in rec:
            if k not in keys:
                keys.append(str(k))
    for n, rec in records:
        rows.append((n, ["" if rec.get(k) is None else str(rec.get(k)) for k in keys]))
    return rows, keys


def _resolve(col: Column, header: Optional[list[str]], ncols: int, path: Path, what: str, flag: str) -> int:
    if isinstance(col, int):
        idx = col if col >= 0 else ncols + col
        if not 0 <= idx < ncols:
            raise EliquareError(
                f"{path}, line 1: {what} column {col} does not exist (the file has {ncols} columns, counted from 0); "
                f"fix {flag}"
            )
        return idx
    if header is None:
        raise EliquareError(
            f"{path}: {what} column {col!r} is a name but the file has no header row; give {flag} as a 0-based "
            "index, or --header if the first row names the columns"
        )
    lowered = [h.lower() for h in header]
    if col in header:
        return header.index(col)
    if col.lower() in lowered:
        return lowered.index(col.lower())
    raise EliquareError(
        f"{path}, line 1: no {what} column named {col!r} "
        f"(columns: {', '.join(map(_columns_shown, header))}); fix {flag}"
    )


def _split_header(p: Path, rows: list, keys: Optional[list[str]], header: Optional[bool], named: bool):
    """``(column names or None, data rows)``: JSON keys, or the first row when it is (or looks like) a header."""
    if keys is not None:
        return keys, rows
    first = rows[0][1]
    if header is None:
        header = named or any(c.strip().lower() in LABEL_NAMES for c in first)
    if not header:
        return None, rows
    if len(rows) == 1:
        raise EliquareError(f"{p} holds a header row but no examples; give a non-empty data file")
    return first, rows[1:]


def _label_index(p: Path, names: Optional[list[str]], rows: list, ncols: int, label_column: Column | None) -> int:
    """The label column: as given, else the one named like a label, else (no header) the one with the
    fewest distinct values."""
    if label_column is not None:
        return _resolve(label_column, names, ncols, p, "label", "--label-column")
    if names is not None:
        found = [i for i, h in enumerate(names) if h.strip().lower() in LABEL_NAMES]
        if not found:
            raise EliquareError(
                f"{p}, line 1: cannot tell which column holds the label "
                f"(columns: {', '.join(map(_columns_shown, names))}); "
                "give --label-column NAME or INDEX"
            )
        return found[0]
    widths = [len(r) for _, r in rows]
    if min(widths) < 2:
        n = rows[widths.index(min(widths))][0]
        raise EliquareError(
            f"{p}, line {n}: expected a label and a text column, found one column; "
            "fix the file or give --label-column and --text-column"
        )

    def spread(i):
        vals = [r[i] for _, r in rows if i < len(r)]
        return (len(set(vals)), sum(map(len, vals)) / max(1, len(vals)))

    return min(range(min(widths)), key=spread)


def _text_indices(
    p: Path, names: Optional[list[str]], rows: list, ncols: int, li: int, text_columns: Optional[list[Column]]
) -> list[int]:
    """The text columns: as given, else every column but the label, ids, URLs and (no header) numbers."""
    if text_columns:
        tis = [_resolve(c, names, ncols, p, "text", "--text-column") for c in text_columns]
    else:
        tis = []
        for i in range(ncols):
            if i == li:
                continue
            if names is not None and names[i].strip().lower() in NOT_TEXT_NAMES:
                continue
            vals = [r[i] for _, r in rows if i < len(r) and r[i]]
            if vals and all(v.startswith(("http://", "https://")) for v in vals):
                continue
            if vals and names is None and all(_is_int(v) for v in vals):
                continue
            tis.append(i)
        if not tis:
            raise EliquareError(f"{p}: no text column left besides the label; give --text-column")
    if li in tis:
        raise EliquareError(f"{p}: the label column is also a text column; fix --label-column or --text-column")
    return tis


def read_table(
    path: str | Path,
    label_column: Column | None = None,
    text_columns: Sequence[Column] | None = None,
    header: Optional[bool] = None,
    fmt: str = "auto",
) -> list[TextExample]:
    """Read a TSV/CSV/JSONL classification file into ``TextExample``s.

    ``label_column`` and ``text_columns`` are names (need a header) or 0-based indices; left out,
    the label is the column named like a label (``label``, ``category``, ...) or, without header,
    the column with the fewest distinct values, and the text is every other column (ids and URLs
    excepted). ``header=None`` detects a header row.
    """
    p = _check_file(path, "data")
    if fmt == "auto":
        fmt = sniff_table_format(p)
    if fmt not in ("tsv", "csv", "jsonl", "json"):
        raise EliquareError(
            f"format {fmt!r} does not hold sentence labels; use tsv, csv, jsonl or auto for --task classify"
        )
    label_column = parse_column(label_column)
    text_columns = [parse_column(c) for c in text_columns] if text_columns else None
    rows, keys = _read_rows(p, fmt)
    if not rows:
        raise EliquareError(f"{p} holds no examples; give a non-empty data file")
    named = isinstance(label_column, str) or any(isinstance(c, str) for c in (text_columns or []))
    names, rows = _split_header(p, rows, keys, header, named)
    ncols = max(len(r) for _, r in rows) if names is None else len(names)
    li = _label_index(p, names, rows, ncols, label_column)
    tis = _text_indices(p, names, rows, ncols, li, text_columns)

    need = max([li, *tis])
    out: list[TextExample] = []
    label_name = names[li] if names is not None else str(li)
    for n, row in rows:
        if len(row) <= need:
            raise EliquareError(
                f"{p}, line {n}: the row has {len(row)} column(s) but column {need} is needed "
                f"(label column {_shown(label_name)}); fix the row"
            )
        label = row[li].strip()
        if not label:
            raise EliquareError(f"{p}, line {n}: the label (column {_shown(label_name)}) is empty; fix the row")
        text = " ".join(row[i].strip() for i in tis if row[i].strip())
        out.append(TextExample(text, label, str(p), n))
    return out


# ---------------------------------------------------------------------------------------------
# datasets: files -> train/dev/test + labels


def read_examples(
    path: str | Path,
    task: str,
    fmt: str = "auto",
    label_column: Column | None = None,
    text_columns: Sequence[Column] | None = None,
    header: Optional[bool] = None,
) -> list:
    if task not in TASKS:
        raise EliquareError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    if task == "classify":
        return read_table(path, label_column, text_columns, header, fmt)
    return read_token_file(path, task, fmt)


def _cut(examples: list, fractions: Sequence[float], seed: int) -> list[list]:
    """Shuffle deterministically and cut into consecutive parts of the given fractions (last = rest)."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    parts, at = [], 0
    for frac in fractions:
        k = max(1, round(frac * len(order)))
        parts.append(sorted(order[at : at + k]))
        at += k
    parts.append(sorted(order[at:]))
    return [[examples[i] for i in part] for part in parts]


DOCUMENTS = ("all", "annotated")


def _by_document(examples: list) -> dict:
    """``{document: [examples]}`` in the file's order."""
    docs: dict = {}
    for e in examples:
        docs.setdefault(e.document, []).append(e)
    return docs


def _holds_entity(examples: list) -> bool:
    return any(t != "O" for e in examples for t in e.tags)


def _capitalised(examples: list) -> int:
    """Words past a sentence's first that start with a capital letter: names, in most scripts that have case."""
    return sum(1 for e in examples for w in e.words[1:] if w[:1].isupper())


def partial_annotation_notice(examples: list, path) -> Optional[str]:
    """A notice when a file's NER layer seems to cover only some of its documents: documents without a single
    entity that hold at least a third of the file's capitalised words (past a sentence's first), 20 or more."""
    docs = _by_document(examples)
    if len(docs) < 2 or None in docs:
        return None
    annotated = [d for d, exs in docs.items() if _holds_entity(exs)]
    bare = [exs for d, exs in docs.items() if d not in annotated]
    if not annotated or not bare:
        return None
    caps_bare = sum(_capitalised(exs) for exs in bare)
    if caps_bare < 20 or 3 * caps_bare < _capitalised(examples):
        return None
    return (
        f"{path}: {len(bare)} of {len(docs)} documents hold no entity, though they hold {caps_bare} capitalised "
        f"words past a sentence's first: its NER layer seems to cover only some documents (every word of the "
        f"others is O, names included); give --documents annotated (a suite's dataset: documents: annotated) to "
        f"keep the {len(annotated)} that hold entities"
    )


def annotated_documents(examples: list, path) -> tuple[list, str]:
    """The examples of the documents that hold at least one entity, and what was kept, in words."""
    docs = _by_document(examples)
    if None in docs:
        raise EliquareError(
            f"{path} marks no documents (CoNLL-U '# newdoc' comments or -DOCSTART- lines), which "
            "--documents annotated needs; drop --documents annotated or mark the documents"
        )
    kept = [e for exs in docs.values() if _holds_entity(exs) for e in exs]
    if not kept:
        raise EliquareError(
            f"{path}: none of its {len(docs)} documents holds an entity; give a file with NER "
            "annotations, or drop --documents annotated"
        )
    n_docs = sum(1 for exs in docs.values() if _holds_entity(exs))
    return kept, f"{n_docs} of {len(docs)} documents ({len(kept)} of {len(examples)} sentences) of {path}"


def _label_sort_key(label: str):
    return (0, int(label), "") if re.fullmatch(r"-?\d+", label) else (1, 0, label)


def ner_labels(tags) -> list[str]:
    types = sorted({t[2:] for t in tags if t != "O"})
    return (
        ["O"]
        + [f"{p}-{t}" for t in types for p in ("B", "I")]
        + [f"{p}-{t}" for t in types for p in ("E", "S") if f"{p}-{t}" in tags]
    )


def label_inventory(task: str, examples: list, conllu_pos: bool = False) -> list[str]:
    if task == "classify":
        return sorted({e.label for e in examples}, key=_label_sort_key)
    tags = {t for e in examples for t in e.tags}
    if task == "ner":
        return ner_labels(tags)
    if conllu_pos and tags <= set(UPOS):  # a UPOS tag set: the whole inventory is known in advance
        tags |= set(UPOS)
    return sorted(tags)


def check_labels(task: str, examples: list, labels: Sequence[str]) -> None:
    """Every label of ``examples`` must be in the inventory: else name the file and line."""
    known = set(labels)
    shown = ", ".join(map(_columns_shown, labels[:30])) + (" ..." if len(labels) > 30 else "")
    for e in examples:
        if task == "classify":
            if e.label not in known:
                raise EliquareError(
                    f"{e.source}, line {e.line}: label {_shown(e.label)} does not occur in the training data "
                    f"(labels: {shown}); fix the label or add training examples of it"
                )
        else:
            for i, t in enumerate(e.tags):
                if t not in known:
                    raise EliquareError(
                        f"{e.source}, line {e.lines[i] if e.lines else e.line}: "
                        f"tag {_shown(t)} does not occur in the training data "
                        f"(tags: {shown}); fix the tag or add training examples of it"
                    )


def load_task_data(
    task: str,
    train: str | Path,
    dev: str | Path | None = None,
    test: str | Path | None = None,
    *,
    fmt: str = "auto",
    label_column: Column | None = None,
    text_columns: Sequence[Column] | None = None,
    header: Optional[bool] = None,
    dev_fraction: float = 0.1,
    split_seed: int = 0,
    documents: str = "all",
) -> TaskData:
    """Read a dataset given as one, two or three files.

    - train + dev + test: used as given;
    - train + test: ``dev_fraction`` of train is held out (deterministically) for validation;
    - train only: the file is cut 80/10/10 into train/dev/test.

    ``documents="annotated"`` (NER): every file keeps only its documents that hold an entity, before any cut.
    """
    if task not in TASKS:
        raise EliquareError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    if documents not in DOCUMENTS:
        raise EliquareError(f"unknown --documents {documents!r}; use one of {', '.join(DOCUMENTS)}")
    if documents != "all" and task != "ner":
        raise EliquareError(
            f"--documents {documents} keeps the documents that hold entities, which only --task ner "
            f"has; drop it for --task {task}"
        )
    if dev is not None and test is None:
        raise EliquareError(
            "a --dev file was given without --test; give --test too, or give only --train to cut "
            "train/dev/test 80/10/10 out of one file"
        )

    notices: list[str] = []
    kept: list[str] = []

    def read(path):
        examples = read_examples(path, task, fmt, label_column, text_columns, header)
        if task != "ner":
            return examples
        if documents == "annotated":
            examples, what = annotated_documents(examples, path)
            kept.append(what)
        else:
            notices.extend(filter(None, [partial_annotation_notice(examples, path)]))
        return examples

    conllu_pos = (
        task == "pos" and fmt in ("auto", "conllu") and sniff_token_format(_check_file(train, "train")) == "conllu"
    )
    tr = read(train)
    files = {"train": str(train), "dev": str(dev) if dev else None, "test": str(test) if test else None}
    if test is None:
        if len(tr) < 3:
            raise EliquareError(
                f"{train} holds {len(tr)} example(s): too few to cut train/dev/test 80/10/10 "
                "(need 3 at least); give more data or separate --dev/--test files"
            )
        te, dv, tr = _cut(tr, (0.1, 0.1), split_seed)
        split = f"train/dev/test cut 80/10/10 from {train} (seed {split_seed})"
        labels = label_inventory(task, tr + dv + te, conllu_pos)
    else:
        te = read(test)
        if dev is None:
            if len(tr) < 2:
                raise EliquareError(
                    f"{train} holds {len(tr)} example(s): too few to hold out a dev split; give "
                    "more data or a --dev file"
                )
            dv, tr = _cut(tr, (dev_fraction,), split_seed)
            split = f"dev = {dev_fraction:.0%} of {train} (seed {split_seed}); test = {test}"
        else:
            dv = read(dev)
            split = "train/dev/test as given"
        labels = label_inventory(task, tr + dv, conllu_pos)
        check_labels(task, te, labels)
    if len(labels) < 2:
        raise EliquareError(
            f"{train}: only one label ({_shown(labels[0])}) in the training data; a classifier needs two or more"
        )
    if kept:
        split += "; NER-annotated documents only: " + ", ".join(kept)
    return TaskData(task, tr, dv, te, labels, split, files, notices)


def read_task_splits(cfg) -> TaskData:
    """The three splits of a fine-tuning job's data (``FinetuneConfig``: its files, format and split options), at most
    ``max_train_examples`` training examples; the readers' notices printed."""
    data = load_task_data(
        cfg.task,
        cfg.train,
        cfg.dev,
        cfg.test,
        fmt=cfg.format,
        label_column=cfg.label_column,
        text_columns=cfg.text_column,
        header=cfg.header,
        dev_fraction=cfg.dev_fraction,
        split_seed=cfg.split_seed,
        documents=cfg.documents,
    )
    for message in data.notices:
        notice(message)
    if cfg.max_train_examples is not None:
        data.train = data.train[: cfg.max_train_examples]
    return data
