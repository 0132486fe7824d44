"""Reading a corpus: files, directories, compressed files and Wikipedia dumps -> clean sentences.

Section 4 of the paper: the student is distilled on target-language text only (the language's
Wikipedia). A corpus is streamed line by line (or page by page for a MediaWiki dump); which
sentences are kept is ``CorpusOptions``; ``sentence_hash`` and ``is_validation`` decide the
90:10 train/validation split, here so that every reader of a corpus splits it the same way.
Changing what comes out of here changes cached corpora: bump ``prepare.DATA_FORMAT_VERSION``.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from eliquare.config import CorpusOptions
from eliquare.conll import read_sentences
from eliquare.errors import EliquareError

_OPENERS: dict[str, Callable[..., Any]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
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
            found = sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and not _SKIP_NAMES.match(f.name)
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
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


# byte-order marks of the wide encodings (UTF-32 first: its little-endian mark starts like UTF-16's)
_WIDE_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\xfe\xff", "UTF-16"),
    (b"\xff\xfe", "UTF-16"),
)
_ENCODING_SAMPLE = 1 << 16  # bytes of a file's start looked at by check_encoding


def check_encoding(path: Path) -> None:
    """Refuse a text file that is not UTF-8 rather than train on its garbage: one that starts with a UTF-16 or
    UTF-32 byte-order mark, holds NUL bytes (UTF-16/32 without a mark: ASCII text in it still decodes), or whose
    first 64 KiB are mostly lines that do not decode. A few bad lines are skipped and counted."""
    try:
        with _open_binary(path) as fh:
            head = fh.read(_ENCODING_SAMPLE)
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise EliquareError(f"cannot read corpus file {path} ({e}); is the file complete and not corrupt?") from None

    def fix(encoding: str) -> str:
        if path.suffix.lower() in _OPENERS:
            return f"decompress it and convert it to UTF-8, e.g. with iconv -f {encoding} -t UTF-8"
        return f"convert it to UTF-8, e.g. iconv -f {encoding} -t UTF-8 {path} > {path.stem}.utf8.txt"

    for bom, encoding in _WIDE_BOMS:
        if head.startswith(bom):
            raise EliquareError(
                f"corpus file {path} is not UTF-8: it starts with a {encoding} byte-order mark; {fix(encoding)}"
            )
    if head.count(0) * 10 > len(head):
        raise EliquareError(
            f"corpus file {path} is not UTF-8: {head.count(0) / len(head):.0%} of its first bytes are "
            f"NUL (UTF-16 or UTF-32 text?); {fix('UTF-16LE')}"
        )
    lines = head.split(b"\n")
    if len(head) == _ENCODING_SAMPLE:
        lines = lines[:-1]  # the sample may end inside a line (and inside a character)
    lines = [line for line in lines if line.strip()]
    bad = 0
    for line in lines:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            bad += 1
    if bad * 2 > len(lines):
        raise EliquareError(
            f"corpus file {path} is not UTF-8: {bad} of its first {len(lines)} lines do not decode; "
            f"{fix('LATIN1')} if it is Latin-1"
        )


def _decoded_lines(path: Path, stats: CorpusStats) -> Iterator[str]:
    """Lines of a (possibly compressed) UTF-8 file (see ``check_encoding``); lines that are not UTF-8 are skipped
    and counted."""
    check_encoding(path)
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
    for sentence in read_sentences(lines):
        yield " ".join(cols[1] if len(cols) >= 2 and re.fullmatch(r"\d+", cols[0]) else cols[0] for _, cols in sentence)


def _squad_texts(path: Path, stats: CorpusStats) -> Iterator[str]:
    """SQuAD-style JSON (Wikipedia QA sets): the unique paragraph contexts."""
    try:
        with _open_binary(path) as fh:
            data = json.load(io.TextIOWrapper(fh, encoding="utf-8", errors="strict"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        stats.skipped_files.append(str(path))
        return
    except (OSError, EOFError, lzma.LZMAError) as e:  # a compressed file cut short, say
        raise EliquareError(f"cannot read corpus file {path} ({e}); is the file complete and not corrupt?") from None
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
        elif isinstance(node, mwparserfromhell.nodes.Tag) and str(node.tag).lower() in (
            "ref",
            "table",
            "gallery",
            "math",
            "code",
            "pre",
        ):
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


# a line that ends a sentence or a paragraph: terminal punctuation, maybe behind a closing quote or bracket
_LINE_END = re.compile(r"[.!?:;\u0964\u0965\u06d4\u061f\u2026][\"'\u201d\u2019\u00bb)\]]*\s*$")
_WRAP_MIN_LINES = 20  # a sample of fewer lines says too little about how the file breaks them
_WRAP_MAX_WIDTH = 200  # text wrapped wider than this is not taken for wrapped text


def is_hard_wrapped(lines: Sequence[str]) -> bool:
    """Whether a text file breaks its running text at a fixed width (a terminal's 80 columns, say) rather than at
    sentence or paragraph ends, so that each line holds pieces of sentences: UD Hebrew-HTB's raw train text does.

    Judged on a sample of the file's lines: most lines end without terminal punctuation, and nearly all are about
    as long as the longest, which is short. One-sentence-per-line and one-paragraph-per-line files (FLORES,
    Tatoeba, news) end most lines with a stop; their lengths spread out; verse has short lines of any length."""
    lines = [line.rstrip() for line in lines if line.strip()]
    if len(lines) < _WRAP_MIN_LINES:
        return False
    width = max(len(line) for line in lines)
    if width > _WRAP_MAX_WIDTH:
        return False
    open_ended = sum(_LINE_END.search(line) is None for line in lines)
    full = sum(len(line) >= 0.7 * width for line in lines)
    # a wrapping program breaks a line where the next word would not fit: lines of their own (sentences without a
    # stop, of similar lengths) often leave room for the next line's first word
    pairs = list(zip(lines, lines[1:]))
    no_room = sum(len(a) + 1 + len(b.split()[0]) > width for a, b in pairs)
    return open_ended * 2 > len(lines) and full >= 0.8 * len(lines) and no_room >= 0.8 * len(pairs)


def _head_lines(path: Path) -> list[str]:
    """The complete lines of the first 64 KiB of a file (undecodable bytes replaced)."""
    with _open_binary(path) as fh:
        head = fh.read(_ENCODING_SAMPLE)
    lines = head.decode("utf-8", errors="replace").split("\n")
    return lines[:-1] if len(head) == _ENCODING_SAMPLE else lines


def _unwrapped(lines: Iterable[str]) -> Iterator[str]:
    """The paragraphs of hard-wrapped text: the lines between blank lines, joined by a space."""
    paragraph: list[str] = []
    for line in lines:
        if line.strip():
            paragraph.append(line.strip())
        elif paragraph:
            yield " ".join(paragraph)
            paragraph = []
    if paragraph:
        yield " ".join(paragraph)


def iter_texts(path: Path, stats: CorpusStats) -> Iterator[str]:
    """Raw text lines (paragraphs) of one corpus file, whatever its format; the lines of hard-wrapped text
    (``is_hard_wrapped``) are joined into paragraphs first, so that no sentence is cut at a line end."""
    name = _plain_name(path)
    if _is_mediawiki_dump(path):
        yield from _wiki_texts(path, stats)
    elif name.endswith(".json"):
        yield from _squad_texts(path, stats)
    elif name.endswith(_TOKEN_PER_LINE):
        yield from _token_per_line_texts(_decoded_lines(path, stats))
    else:
        lines = _decoded_lines(path, stats)
        try:
            wrapped = is_hard_wrapped(_head_lines(path))
        except (OSError, EOFError, lzma.LZMAError):
            wrapped = False  # an unreadable file: _decoded_lines says so
        yield from _unwrapped(lines) if wrapped else lines


# ---------------------------------------------------------------------------------------------
# sentences


def split_sentences(text: str) -> list[str]:
    """Split a paragraph into sentences at terminal punctuation followed by a likely sentence start."""
    return [s for s in (part.strip() for part in _SENTENCE_END.split(text)) if s]


def clean_sentence(text: str) -> str:
    return _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()


def iter_sentences(
    paths: Sequence[str | os.PathLike], options: CorpusOptions | None = None, *, stats: CorpusStats | None = None
) -> Iterator[str]:
    """Clean sentences from files, directories, compressed files and MediaWiki dumps, streamed.

    Sentences with fewer than ``options.min_words`` words or more than ``options.max_chars`` characters,
    and text without any letter, are dropped (and counted in ``stats``); at most ``options.max_sentences``
    are yielded. Duplicates are *not* removed here.
    """
    options = options or CorpusOptions()
    stats = stats if stats is not None else CorpusStats()
    yielded = 0
    for path in expand_paths(paths):
        stats.files += 1
        for text in iter_texts(path, stats):
            for sentence in split_sentences(text):
                sentence = clean_sentence(sentence)
                if not sentence or not any(ch.isalpha() for ch in sentence):
                    continue
                if len(sentence.split()) < options.min_words:
                    stats.too_short += 1
                    continue
                if len(sentence) > options.max_chars:
                    stats.too_long += 1
                    continue
                stats.sentences += 1
                yielded += 1
                yield sentence
                if yielded == options.max_sentences:
                    return


def sentence_hash(sentence: str) -> int:
    """A stable 63-bit hash: drives both exact de-duplication and the train/validation split."""
    return int.from_bytes(hashlib.blake2b(sentence.encode("utf-8"), digest_size=8).digest(), "big") >> 1


def is_validation(h, fraction: float):
    # the split depends only on the sentence itself: deterministic, order-free, streamable
    # (``h``: one hash or a numpy array of them)
    return (h % 1_000_003) < fraction * 1_000_003
