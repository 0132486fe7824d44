"""Students for two or more languages (the paper's future work): one corpus per language, sampled by weight.

``--corpus sw=PATH --corpus sl=PATH`` names each corpus's language; ``--language-weights sw=0.7,sl=0.3`` sets the
share of each language in the training sentences (a smaller corpus is repeated, a larger one subsampled, with a
fixed seed; without weights every sentence is used once). Each language is read, de-duplicated, split 90:10 and
tokenised on its own (and cached as a monolingual corpus is); validation keeps every language's held-out sentences,
interleaved, so that the health sample sees all of them. VocabReduce over several languages keeps a subword found
in ``min_fraction`` of the sentences of *any* language, so that the smaller language keeps its subwords
(``eliquare.vocab.choose``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eliquare.errors import EliquareError

_ENTRY = re.compile(r"^([A-Za-z][A-Za-z0-9_-]{0,15})=(.+)$")


def by_language(entries: Sequence[str]) -> dict[str, list[str]] | None:
    """``{language: [paths]}`` of ``LANG=PATH`` corpus entries; None when the entries are plain paths."""
    matches = [(e, _ENTRY.match(str(e))) for e in entries]
    tagged = [m for e, m in matches if m and not Path(str(e)).exists()]
    if not tagged:
        return None
    if len(tagged) != len(matches):
        plain = next(str(e) for e, m in matches if not (m and not Path(str(e)).exists()))
        raise EliquareError(
            f"--corpus {plain} has no language: give every corpus as LANG=PATH (e.g. sw=sw.txt "
            "sl=sl.txt) for a student of several languages, or none of them"
        )
    out: dict[str, list[str]] = {}
    for m in tagged:
        out.setdefault(m.group(1), []).append(m.group(2))
    return out


def corpus_paths(entries: Sequence[str]) -> list[str]:
    """The files and directories of the corpus entries, languages dropped."""
    languages = by_language(entries)
    return [p for paths in languages.values() for p in paths] if languages else [str(e) for e in entries]


def parse_weights(text: str | None, languages: Sequence[str]) -> dict[str, float] | None:
    """``"sw=0.7,sl=0.3"`` -> ``{"sw": 0.7, "sl": 0.3}`` (normalised to sum to 1); None without weights."""
    if not text:
        return None
    if not languages:
        raise EliquareError("--language-weights needs a corpus per language: give --corpus LANG=PATH for each")
    weights: dict[str, float] = {}
    for item in str(text).split(","):
        name, sep, value = item.strip().partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not sep or weight < 0:
            raise EliquareError(
                f"--language-weights {item.strip()!r} is not LANG=WEIGHT with a weight >= 0; write "
                "e.g. --language-weights sw=0.7,sl=0.3"
            )
        weights[name.strip()] = weight
    unknown = sorted(set(weights) - set(languages))
    missing = sorted(set(languages) - set(weights))
    if unknown or missing:
        raise EliquareError(
            f"--language-weights names {', '.join(unknown) or 'no unknown language'}; the corpora are "
            f"{', '.join(languages)}" + (f" (no weight for {', '.join(missing)})" if missing else "")
        )
    total = sum(weights.values())
    if total <= 0:
        raise EliquareError("--language-weights are all 0; give at least one language a positive weight")
    return {k: weights[k] / total for k in languages}


def sampled_rows(size: int, target: int, seed: int) -> list[int]:
    """``target`` row indices of a corpus of ``size`` rows: a random order, repeated as often as needed."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows: list[int] = []
    while len(rows) < target:
        rows.extend(rng.permutation(size).tolist())
    return rows[:target]


def interleaved_rows(sizes: Sequence[int]) -> list[tuple[int, int]]:
    """(part, row) of every row of several parts, taking one of each part in turn."""
    out: list[tuple[int, int]] = []
    for i in range(max(sizes, default=0)):
        out.extend((p, i) for p, n in enumerate(sizes) if i < n)
    return out


def _sampled_trains(parts: dict, weights: dict | None, seed: int):
    """Each language's training sentences, sampled to its weight's share of all of them (all of them, in order,
    without weights); returns ``(trains, token_counts, record)``: the token counts of all languages, each scaled
    by its sampling, and each language's entry of ``PreparedCorpus.languages`` (its share still to fill in)."""
    import numpy as np

    total = sum(len(p.train) for p in parts.values())
    trains = []
    counts: np.ndarray | None = None
    record: dict[str, dict[str, Any]] = {}
    for k, (language, part) in enumerate(parts.items()):
        n = len(part.train)
        if n == 0:
            raise EliquareError(f"the {language} corpus gave no training sentences; check its files")
        target = round(weights[language] * total) if weights else n
        rows = sampled_rows(n, target, seed + k) if weights else list(range(n))
        trains.append(part.train.select(rows))
        scale = target / n
        counts = part.token_counts * scale if counts is None else counts + part.token_counts * scale
        record[language] = {
            "train_sentences": n,
            "validation_sentences": len(part.validation),
            "sampled_train_sentences": target,
            "weight": weights[language] if weights else None,
            "share": None,
            "fingerprint": part.fingerprint,
        }
    assert counts is not None  # every language was read, each with training sentences
    return trains, counts, record


def _interleaved_validation(parts: dict):
    """The languages' validation sentences in one dataset, interleaved row by row (``interleaved_rows``)."""
    import datasets
    import numpy as np

    validations = [p.validation for p in parts.values()]
    offsets = np.cumsum([0] + [len(v) for v in validations])
    return datasets.concatenate_datasets(validations).select(
        [int(offsets[p] + i) for p, i in interleaved_rows([len(v) for v in validations])]
    )


def _summed_stats(parts: dict):
    """The languages' reading statistics added up (counts summed, lists joined)."""
    from eliquare.corpus.read import CorpusStats

    stats = CorpusStats()
    for part in parts.values():
        for key, value in part.stats.as_dict().items():
            if isinstance(value, int):
                setattr(stats, key, getattr(stats, key) + value)
            else:
                getattr(stats, key).extend(value)
    return stats


def prepare_languages(
    corpora: dict[str, list[str]],
    tokenizer,
    options=None,
    *,
    weights: dict | None = None,
    seed: int = 0,
    log=print,
    **prepare,
):
    """``prepare_corpus`` for each language, combined into one ``PreparedCorpus`` (its ``languages`` records each
    language's sentences, share and weight)."""
    import datasets
    import numpy as np

    from eliquare.corpus.prepare import PreparedCorpus, prepare_corpus
    from eliquare.fingerprint import digest

    parts = {}
    for language, paths in corpora.items():
        log(f"corpus {language}:")
        parts[language] = prepare_corpus(paths, tokenizer, options, log=log, **prepare)
    trains, counts, record = _sampled_trains(parts, weights, seed)
    train = datasets.concatenate_datasets(trains)
    for language in record:
        record[language]["share"] = round(record[language]["sampled_train_sentences"] / max(len(train), 1), 4)
    validation = _interleaved_validation(parts)
    stats = _summed_stats(parts)
    stats.train, stats.validation = len(train), len(validation)
    fingerprint = digest(
        {"languages": {k: v["fingerprint"] for k, v in record.items()}, "weights": weights, "seed": seed}
    )[:24]
    log(
        "corpus: "
        + ", ".join(
            f"{k} {v['sampled_train_sentences']:,} train sentences ({v['share']:.0%})" for k, v in record.items()
        )
    )
    return PreparedCorpus(
        train=train,
        validation=validation,
        token_counts=np.rint(counts).astype(np.int64),
        stats=stats,
        fingerprint=fingerprint,
        path=next(iter(parts.values())).path,
        languages=record,
    )
