"""Token-task files (POS, NER): CoNLL-U and token-per-line BIO, with the document boundaries each marks."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from eliquare.conll import CONLLU_COLUMNS, read_sentences
from eliquare.errors import EliquareError
from eliquare.tasks.files import _BIO_TAG, TokenExample, _check_file, _is_int, _read_lines, _shown


def check_bio(tag: str, path: Path | str, line: int) -> None:
    if not _BIO_TAG.match(tag):
        raise EliquareError(
            f"{path}, line {line}: tag {_shown(tag)} is not a BIO tag (O, B-TYPE or I-TYPE); fix the file, "
            "or use --task pos for other tag sets"
        )


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
