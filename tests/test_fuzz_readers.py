"""Fuzzing the readers: damaged dataset and corpus files either parse or give one line that names
the file (and the line, where one line is at fault), never another exception.

Cases come from ``fuzz.case(seed)``: well-formed files of each format with random mutations, and random
bytes. The default suite runs 4,500 cases; ``-m slow`` runs 40,000. A failure prints the seeds
that reproduce it: ``fuzz.case(seed)``.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
import re
from collections import Counter

import fuzz
import pytest

from eliquare.conll import read_sentences
from eliquare.corpus.read import CorpusStats, iter_sentences
from eliquare.errors import EliquareError
from eliquare.tasks.readers import load_task_data

SUFFIXES = {
    "conllu": [".conllu", ".conll", ".txt"],
    "bio": [".bio", ".txt", ".conllu", ".iob"],
    "tsv": [".tsv", ".txt"],
    "csv": [".csv", ".txt"],
    "jsonl": [".jsonl", ".json", ".txt"],
    "text": [".txt", ".tsv"],
    "bytes": [".conllu", ".bio", ".tsv", ".csv", ".jsonl", ".json", ".txt"],
}
TASK_OF = {
    "conllu": ["pos", "ner"],
    "bio": ["ner", "pos"],
    "tsv": ["classify"],
    "csv": ["classify"],
    "jsonl": ["classify"],
    "text": ["classify", "pos"],
    "bytes": ["pos", "ner", "classify"],
}
FORMATS = {
    "pos": ["auto", "auto", "conllu", "bio"],
    "ner": ["auto", "auto", "conllu", "bio"],
    "classify": ["auto", "auto", "tsv", "csv", "jsonl", "json"],
}


def _check_error(e: EliquareError, paths, failures, seed, where) -> bool:
    """One line, naming one of the files; returns whether it names a line too."""
    text = str(e)
    if "\n" in text or "\r" in text or not any(str(p) in text for p in paths):
        failures.append((seed, where, "EliquareError", text[:300]))
    return bool(re.search(r", line \d+", text))


def _fuzz_datasets(tmp_path, seeds) -> tuple[Counter, list]:
    figures, failures = Counter(), []
    for seed in seeds:
        rng = random.Random(seed * 7919 + 1)
        kind, data = fuzz.case(seed)
        train = tmp_path / f"train{rng.choice(SUFFIXES[kind])}"
        train.write_bytes(data)
        task = rng.choice(TASK_OF[kind])
        fmt = rng.choice(FORMATS[task])
        test = None
        if rng.random() < 0.3:
            other_kind, other = fuzz.case(seed + 10**7)
            test = tmp_path / f"test{rng.choice(SUFFIXES[kind])}"
            test.write_bytes(other)
        options = {}
        if task == "classify" and rng.random() < 0.3:
            options = dict(
                label_column=rng.choice(["0", "label", "-1", "5"]),
                text_column=[rng.choice(["1", "text"])],
                header=rng.choice([None, True, False]),
            )
        try:
            load_task_data(
                task,
                train,
                None,
                test,
                fmt=fmt,
                **{k.replace("text_column", "text_columns"): v for k, v in options.items()},
            )
            figures["parsed"] += 1
        except EliquareError as e:
            figures["one-line errors"] += 1
            figures["naming a line"] += _check_error(e, [train, test], failures, seed, f"{task} {fmt} {kind}")
        except Exception as e:  # noqa: BLE001 - what the fuzzer looks for
            failures.append((seed, f"{task} {fmt} {kind}", type(e).__name__, str(e)[:300]))
    figures["cases"] = len(seeds)
    figures["failures"] = len(failures)
    return figures, failures


def _compress(rng, path, data):
    suffix = rng.choice(["", "", ".gz", ".bz2", ".xz"])
    if suffix:
        data = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}[suffix](data)
        if rng.random() < 0.3:
            data = data[: rng.randint(0, len(data))]  # a download cut short
    return path.with_name(path.name + suffix), data


def _fuzz_corpus(tmp_path, seeds) -> tuple[Counter, list]:
    figures, failures = Counter(), []
    for seed in seeds:
        rng = random.Random(seed * 104729 + 3)
        kind, data = fuzz.case(seed)
        name = rng.choice(["corpus.txt", "corpus.conllu", "corpus.bio", "squad.json", "wiki.xml", "corpus"])
        if name == "wiki.xml":
            data = rng.choice([b"<mediawiki xmlns='http://www.mediawiki.org/xml/export-0.10/'>", b"<mediawiki>"]) + data
        path, data = _compress(rng, tmp_path / name, data)
        path.write_bytes(data)
        try:
            sentences = list(iter_sentences([path], stats=CorpusStats()))
            figures["parsed"] += 1
            figures["sentences"] += len(sentences)
        except EliquareError as e:
            figures["one-line errors"] += 1
            _check_error(e, [path], failures, seed, f"corpus {path.name} {kind}")
        except Exception as e:  # noqa: BLE001
            failures.append((seed, f"corpus {path.name} {kind}", type(e).__name__, str(e)[:300]))
        path.unlink()
    figures["cases"] = len(seeds)
    figures["failures"] = len(failures)
    return figures, failures


def _fuzz_conll(seeds) -> Counter:
    figures = Counter()
    for seed in seeds:
        rng = random.Random(seed)
        _, data = fuzz.case(seed)
        lines = data.decode("utf-8", errors="replace").split("\n")
        flags = dict(
            conllu=rng.random() < 0.5,
            comments=rng.random() < 0.5,
            skip_nodes=rng.random() < 0.5,
            docstart=rng.random() < 0.5,
        )
        for sentence in read_sentences(lines, **flags):  # a pure function of its lines: no exception at all
            assert sentence and all(cols and n >= 1 for n, cols in sentence)
        figures["cases"] += 1
    return figures


def _checked(figures_failures) -> Counter:
    figures, failures = figures_failures
    assert not failures, failures[:8]  # (seed, what, exception, message): fuzz.case(seed) reproduces it
    return figures


def test_fuzz_dataset_readers(tmp_path):
    figures = _checked(_fuzz_datasets(tmp_path, range(1500)))
    print(f"fuzz, dataset readers: {dict(figures)}")
    assert figures["parsed"] > 100 and figures["one-line errors"] > 100  # both paths are exercised


def test_fuzz_corpus_reader(tmp_path):
    figures = _checked(_fuzz_corpus(tmp_path, range(1000)))
    print(f"fuzz, corpus reader: {dict(figures)}")
    assert figures["parsed"] > 100 and figures["sentences"] > 500


def test_fuzz_conll_sentences():
    print(f"fuzz, conll.read_sentences: {dict(_fuzz_conll(range(2000)))}")


@pytest.mark.slow
def test_fuzz_readers_many(tmp_path):
    seeds = range(10_000, 50_000)
    print(f"fuzz, dataset readers: {dict(_checked(_fuzz_datasets(tmp_path, seeds)))}")
    print(f"fuzz, corpus reader: {dict(_checked(_fuzz_corpus(tmp_path, range(10_000, 30_000))))}")
    print(f"fuzz, conll.read_sentences: {dict(_fuzz_conll(seeds))}")


def test_errors_name_the_line_an_editor_shows(tmp_path):
    """Guards against: str.splitlines also ended lines at \\x0b, \\x0c, \\x1c, \\x85, \\u2028..., so every error
    after such a
    character named a later line than the file's (and a message could quote a newline)."""
    f = tmp_path / "a.bio"
    f.write_text("mama\x0cyangu O\nbaba\u2028 O\nkaka\x85 O\n\nmtoto\n", encoding="utf-8")
    with pytest.raises(EliquareError, match=r"a\.bio, line 5: expected a token and a tag"):
        load_task_data("ner", f)
    f.write_bytes("mama O\nbaba\u2028 O\n".encode() + b"kaka\xff O\n")
    with pytest.raises(EliquareError, match=r"a\.bio, line 3: not UTF-8 text \(byte 21\)"):
        load_task_data("ner", f)
    t = tmp_path / "a.tsv"
    t.write_text('label\ttext\na\t"one\ntwo"\nb\tx\n', encoding="utf-8")
    with pytest.raises(EliquareError) as e:
        load_task_data("classify", t, label_column="text", text_columns=["nope"])
    assert "\n" not in str(e.value) and "no text column named 'nope' (columns: label, text)" in str(e.value)
