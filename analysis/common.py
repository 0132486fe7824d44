"""What the analysis modules share: where the repository and the real data are, an argument parser described by
the module's docstring, reading records, and writing JSON and text as the committed files are written."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eliquare.atomic import write_json

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"  # the real data beside the checkout (../shared/data)
SW_NEWS = SHARED_DATA / "sw" / "news_classification"

__all__ = [
    "ROOT",
    "SHARED_DATA",
    "SW_NEWS",
    "parser",
    "load_json",
    "read_json",
    "write_json",
    "write_text",
    "write_markdown",
    "news_texts",
]


def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser whose description is the first line of ``doc`` (the module's docstring) and whose help
    ends with the rest of it, the commands that wrote the committed outputs."""
    first, _, rest = doc.strip().partition("\n")
    return argparse.ArgumentParser(
        description=first, epilog=rest.strip() or None, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def load_json(path: Path):
    """The JSON in ``path``, or None where the file is absent or not JSON (a run that has not written it yet)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_json(path: Path):
    """The JSON in ``path``, which must be there."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_text(path: Path, text: str) -> None:
    Path(path).write_text(text, encoding="utf-8")


def write_markdown(path: Path, lines: list[str]) -> str:
    """``lines`` as one file, each ended by a newline; returns the text (the modules print it too)."""
    text = "\n".join(lines) + "\n"
    write_text(path, text)
    return text


def news_texts(path: Path | str) -> list[str]:
    """The articles of a sw news classification file, headline and text joined, as ``eliquare finetune`` reads
    them."""
    from eliquare.tasks.readers import read_examples

    return [e.text for e in read_examples(path, "classify", label_column="category", text_columns=["headline", "text"])]
