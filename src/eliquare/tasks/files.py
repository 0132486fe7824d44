"""What every task file reader shares: the examples (a sentence of tagged tokens, a labelled text), a task's three
splits, file checks and text decoding with line numbers as editors count them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from eliquare.errors import EliquareError

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


def _check_file(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise EliquareError(f"{what} file {p} does not exist; check the path")
    if not p.is_file():
        raise EliquareError(f"{what} file {p} is not a file; give the path of a data file")
    return p


_NEWLINE = re.compile(r"\r\n|\r|\n")  # what the csv module and editors count as line ends (not str.splitlines's


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
