"""Classification tables: TSV, CSV, JSONL and JSON, with the label and text columns found by name or index."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Optional, overload

from eliquare.errors import EliquareError
from eliquare.tasks.files import (
    LABEL_NAMES,
    NOT_TEXT_NAMES,
    Column,
    TextExample,
    _check_file,
    _columns_shown,
    _is_int,
    _read_lines,
    _read_text,
    _shown,
)


@overload
def parse_column(value: Column) -> Column: ...


@overload
def parse_column(value: None) -> None: ...


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


class _NotQuoted(Exception):
    """A TSV file breaks the quoting rules of the csv module (see ``_read_rows``)."""


def _delimited_rows(
    path: Path, text: str, delimiter: str, strict: bool = False, quoting: Literal[0, 1, 2, 3] = csv.QUOTE_MINIMAL
) -> list[tuple[int, list[str]]]:
    """The non-blank rows of a delimited file, each with its starting line number; ``strict``: raise ``_NotQuoted``
    where a quote is misplaced, instead of reading on."""
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=strict, quoting=quoting)
    try:
        prev = 0
        for row in reader:
            start = prev + 1
            prev = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            rows.append((start, [c.strip() for c in row]))
    except csv.Error as e:
        if strict:
            raise _NotQuoted from None
        name = "TSV" if delimiter == "\t" else "CSV"
        raise EliquareError(f"{path}, line {reader.line_num}: cannot parse the {name} ({e}); fix the file") from None
    return rows


def _read_rows(path: Path, fmt: str) -> tuple[list[tuple[int, list[str]]], Optional[list[str]]]:
    """Rows with their starting line number; for JSON, the keys act as a header."""
    if fmt in ("tsv", "csv"):
        text = _read_text(path)
        csv.field_size_limit(1 << 30)
        if fmt == "csv":
            return _delimited_rows(path, text, ",", strict=False), None
        # A TSV written by pandas or csv quotes fields that hold a quote ("a ""b"" c"); a plain TSV (the IANA
        # format) has no quoting, and its quotes are text: Amram et al.'s Hebrew set has fields such as
        # `" " word " "`. A file that is not valid quoted TSV throughout is read unquoted, so no quote is lost.
        try:
            return _delimited_rows(path, text, "\t", strict=True), None
        except _NotQuoted:
            return _delimited_rows(path, text, "\t", quoting=csv.QUOTE_NONE), None
    # JSON lines (or a JSON list of objects)
    rows: list[tuple[int, list[str]]] = []
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
