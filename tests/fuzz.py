"""A seeded generator of damaged data files for the reader fuzz tests (tests/test_fuzz_readers.py).

Each case starts from a well-formed file of some format (CoNLL-U, BIO, TSV/CSV, JSON lines, plain text)
or from random bytes, and applies a few random mutations: stray tabs and spaces, a column dropped or
added, huge lines, empty sentences, blank and comment lines, BOMs, other encodings (Latin-1, UTF-16,
CP1252), NUL bytes, CR and CRLF, Unicode line separators, unbalanced quotes, truncation. ``case(seed)``
is the same bytes on every machine, so a failing seed is a reproduction.
"""

from __future__ import annotations

import json
import random

WORDS = [
    "mtoto",
    "anasoma",
    "kitabu",
    "Ljubljana",
    "čaj",
    "été",
    "שלום",
    "नमस्ते",
    "#",
    "-",
    "_",
    "1-2",
    "1.1",
    "O",
    "B-PER",
    "I-LOC",
    "-DOCSTART-",
    '"',
    "'",
    ",",
    "NER=B-org",
    "a b",
    "",
    "\\",
    "{",
    "}",
    "0",
]
TAGS = ["NOUN", "VERB", "PUNCT", "_", "", "O", "B-PER", "I-PER", "B-", "X-FOO", "b-per", "S-LOC", "E-LOC"]
ODD = [
    "\t",
    " ",
    "\x00",
    "\r",
    "\r\n",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x85",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\ud800",
    '"',
    "'",
    "#",
    "\\N",
    "\xa0",
    "\u200b",
    "\n\n",
    "\t\t\t",
]


def _word(rng: random.Random) -> str:
    return rng.choice(WORDS) if rng.random() < 0.97 else "".join(rng.choice(ODD + WORDS) for _ in range(3))


def _tag(rng: random.Random, good: tuple[str, ...]) -> str:
    return rng.choice(good) if rng.random() < 0.95 else rng.choice(TAGS)


def _conllu(rng: random.Random) -> list[str]:
    lines = []
    for s in range(rng.randint(1, 6)):
        if rng.random() < 0.5:
            lines.append(f"# sent_id = {s}")
        for i in range(1, rng.randint(1, 6) + 1):
            ner = _tag(rng, ("O", "B-PER", "I-PER", "B-LOC"))
            misc = (
                rng.choice([f"NER={ner}", f"NER={ner}|SpaceAfter=No", f"X=Y|NER={ner}"])
                if rng.random() < 0.95
                else rng.choice(["_", "SpaceAfter=No", "NER"])
            )
            cols = [str(i), _word(rng), "_", _tag(rng, ("NOUN", "VERB", "PUNCT")), "_", "_", "0", "dep", "_", misc]
            lines.append("\t".join(cols))
        lines.append("")
    return lines


def _bio(rng: random.Random) -> list[str]:
    lines = []
    indexed = rng.random() < 0.3
    for _ in range(rng.randint(1, 6)):
        if rng.random() < 0.2:
            lines += ["-DOCSTART- -X- O O", ""]
        for i in range(rng.randint(1, 6)):
            sep = rng.choice([" ", "\t", "  "])
            parts = (
                ([str(i)] if indexed else [])
                + [_word(rng)]
                + (["NN", "I-NP"] if rng.random() < 0.2 else [])
                + [_tag(rng, ("O", "B-PER", "I-PER", "B-LOC"))]
            )
            lines.append(sep.join(parts))
        lines.append("")
    return lines


def _table(rng: random.Random, sep: str) -> list[str]:
    lines = [sep.join(["label", "text"])] if rng.random() < 0.5 else []
    for _ in range(rng.randint(1, 12)):
        text = " ".join(_word(rng) for _ in range(rng.randint(0, 5)))
        if rng.random() < 0.2:
            text = f'"{text}"'
        label = rng.choice(["a", "b", "c"]) if rng.random() < 0.95 else rng.choice(["", "label", " "])
        lines.append(sep.join([label, text or "mama"] + (["x"] if rng.random() < 0.05 else [])))
    return lines


def _jsonl(rng: random.Random) -> list[str]:
    lines = []
    for _ in range(rng.randint(1, 10)):
        good = {"label": rng.choice(["a", "b"]), "text": _word(rng) + " mama"}
        value = (
            good
            if rng.random() < 0.9
            else rng.choice(
                [
                    {"label": rng.choice(["a", "b", None, 1, [1]]), "text": _word(rng)},
                    {"text": _word(rng)},
                    [1, 2],
                    "text",
                    3,
                    None,
                    {"label": "a", "text": {"x": 1}},
                    {"label": "b", "text": _word(rng), "id": rng.randint(0, 9)},
                ]
            )
        )
        lines.append(json.dumps(value, ensure_ascii=rng.random() < 0.5))
    return lines


def _text(rng: random.Random) -> list[str]:
    return [
        " ".join(_word(rng) for _ in range(rng.randint(0, 12))) + rng.choice([".", "!", "", " Mama."])
        for _ in range(rng.randint(0, 20))
    ]


KINDS = {
    "conllu": _conllu,
    "bio": _bio,
    "tsv": lambda r: _table(r, "\t"),
    "csv": lambda r: _table(r, ","),
    "jsonl": _jsonl,
    "text": _text,
}


def _mutate_lines(rng: random.Random, lines: list[str]) -> list[str]:
    lines = list(lines)
    for _ in range(rng.choice([0, 0, 1, 1, 2, 4])):
        if not lines:
            lines.append("")
        i = rng.randrange(len(lines))
        op = rng.randrange(9)
        if op == 0:  # a stray tab, space or odd character
            pos = rng.randint(0, len(lines[i]))
            lines[i] = lines[i][:pos] + rng.choice(ODD) + lines[i][pos:]
        elif op == 1:  # a column dropped
            cols = lines[i].split("\t")
            if len(cols) > 1:
                del cols[rng.randrange(len(cols))]
            lines[i] = "\t".join(cols)
        elif op == 2:  # tabs become spaces
            lines[i] = lines[i].replace("\t", " ")
        elif op == 3:  # a huge line
            lines[i] = lines[i] + " " + "x" * rng.choice([10_000, 100_000]) + rng.choice(["", "\t", "\tO"])
        elif op == 4:  # empty sentences, blank lines
            lines[i:i] = [""] * rng.randint(1, 3)
        elif op == 5:  # a comment or a CoNLL-U range / empty node line
            lines.insert(i, rng.choice(["#", "# text = x", "1-2\tdel", "1.1\tx\t_\tX\t_\t_\t_\t_\t_\t_", "-DOCSTART-"]))
        elif op == 6:  # a line deleted
            del lines[i]
        elif op == 7:  # a line repeated
            lines.insert(i, lines[i])
        else:  # whitespace only
            lines[i] = rng.choice([" ", "\t", " \t ", "\u3000"])
    return lines


def _encode(rng: random.Random, text: str) -> bytes:
    encoding = rng.choices(["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16", "utf-16-le"], [20, 1, 1, 1, 1, 1])[0]
    data = text.encode(encoding, errors="replace") if encoding != "utf-8" else text.encode("utf-8", "surrogatepass")
    r = rng.random()
    if r < 0.1:
        data = data[: rng.randint(0, len(data))]  # truncated, maybe inside a character
    elif r < 0.2 and data:
        pos = rng.randrange(len(data))
        data = data[:pos] + bytes([rng.randrange(256)]) + data[pos + 1 :]  # one byte flipped
    elif r < 0.25:
        data = data + rng.choice([b"\xff\xfe", b"\xc3", b"\x00\x00", b"\xe2\x80"])
    return data


def case(seed: int) -> tuple[str, bytes]:
    """``(kind, bytes)`` of one fuzz case; kind is the format it started from (``bytes``: random bytes)."""
    rng = random.Random(seed)
    if rng.random() < 0.08:
        return "bytes", bytes(rng.randrange(256) for _ in range(rng.randint(0, 600)))
    kind = rng.choice(list(KINDS))
    lines = _mutate_lines(rng, KINDS[kind](rng))
    newline = rng.choices(["\n", "\r\n", "\r"], [8, 2, 1])[0]
    text = newline.join(lines) + (newline if rng.random() < 0.8 else "")
    return kind, _encode(rng, text)
