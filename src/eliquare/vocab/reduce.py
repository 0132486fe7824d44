"""VocabReduce (Section 5 of the paper): shrink a multilingual model's vocabulary to one language.

A multilingual vocabulary spends most of a small model's parameters on subwords the target language
never uses (multilingual-e5-small: 96 M of its 117 M parameters are the 250k x 384 embedding matrix).
``reduce_vocabulary`` counts the subwords on a target-language corpus, keeps the frequent ones (plus
the special tokens and every piece needed to spell the characters of the corpus), and cuts tokenizer,
embeddings, MLM decoder and bias down to them. Works before distillation (on the teacher) and after
(on the student); ``eliquare vocab reduce`` does it for a saved model.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eliquare.atomic import Replacement
from eliquare.config import CorpusOptions, VocabReduceConfig, vocab_selection
from eliquare.errors import EliquareError, check_output_dir
from eliquare.models import count_parameters, load_model
from eliquare.vocab.families import tokenizer_family
from eliquare.vocab.select import (
    TokenCounts,
    WordTable,
    count_tokens,
    frequency_threshold,
    select_by_coverage,
    select_ids,
)
from eliquare.vocab.slicing import slice_vocabulary
from eliquare.vocab.tokenizer_json import (
    added_token_mask,
    id_to_token,
    load_reduced_tokenizer,
    reduce_tokenizer_json,
    tokenizer_json,
)

REPORT_FILE = "vocab_report.json"


@dataclass
class ReductionResult:
    model: object  # the model passed in, reduced in place
    tokenizer: object  # a new tokenizer of the same class
    kept_ids: np.ndarray  # old ids in their new order: new id i was old id kept_ids[i]
    report: dict
    slow_files: dict[str, bytes] = field(default_factory=dict)  # vocab.txt, sentencepiece model, vocab.json ...

    def save(self, out_dir: str | Path) -> Path:
        """Write model, tokenizer (fast and slow vocabulary files) and ``vocab_report.json`` to ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(out)
        save_tokenizer(self.tokenizer, self.slow_files, out)
        (out / REPORT_FILE).write_text(json.dumps(self.report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return out


def save_tokenizer(tokenizer, slow_files: dict[str, bytes], out_dir: str | Path) -> None:
    """``save_pretrained`` plus the vocabulary files of the slow tokenizer (transformers 5 writes only
    tokenizer.json)."""
    from eliquare.publish import make_tokenizer_config_portable

    tokenizer.save_pretrained(out_dir)
    make_tokenizer_config_portable(out_dir)  # loads on transformers 4.x too
    for name, data in slow_files.items():
        Path(out_dir, name).write_bytes(data)


@dataclass
class Counted:
    """What a corpus says about a tokenizer's ids, before any choice (``count_vocabulary``)."""

    family: object  # the family module (eliquare.vocab.wordpiece, .unigram or .bpe)
    tokenizer_json: dict
    tokens: list  # token string of every old id
    counts: TokenCounts  # all languages together
    required: np.ndarray  # bool per old id: special tokens and character pieces
    languages: dict[str, TokenCounts] | None = None  # several languages: each one's own counts


@dataclass
class Selection:
    """Which ids of a tokenizer stay, and the counts they were chosen from."""

    family: object
    tokenizer_json: dict
    tokens: list
    counts: TokenCounts
    threshold: int | None  # least number of sentences a kept subword occurs in (None: chosen by coverage)
    required: np.ndarray
    keep: np.ndarray  # bool per old id
    languages: dict | None = None  # several languages: each one's sentences, threshold and the ids it alone keeps
    chosen: np.ndarray | None = None  # bool per old id: what the rule picked (threshold or coverage), before closure
    coverage: float | None = None  # the share of word tokens asked to stay unchanged (None: by threshold)

    @property
    def kept_ids(self) -> np.ndarray:
        return np.flatnonzero(self.keep)


def count_vocabulary(tokenizer, sentences, *, report_sentences: int = 50_000) -> Counted:
    """Count the subwords (and words) of ``tokenizer`` on ``sentences`` (or ``{language: sentences}``), and find the
    ids that always stay; ``choose`` then picks the rest, as often as wanted without counting again."""
    tj = tokenizer_json(tokenizer)
    family = tokenizer_family(tj)
    tokens = id_to_token(tokenizer)
    languages = None
    if isinstance(sentences, dict):
        languages = {
            lang: count_tokens(
                tokenizer.backend_tokenizer,
                sents,
                sample_size=max(report_sentences // len(sentences), 1),
                tokenizer_json=tj,
            )
            for lang, sents in sentences.items()
        }
        counts = TokenCounts(len(tokens))
        for c in languages.values():
            counts.sentences += c.sentences
            counts.words += c.words
            counts.doc_freq += c.doc_freq
            counts.token_freq += c.token_freq
            counts.sample.extend(c.sample)
            counts.sample_ids.extend(c.sample_ids)
        counts.word_table = WordTable.concatenate([c.word_table for c in languages.values()])
    else:
        counts = count_tokens(tokenizer.backend_tokenizer, sentences, sample_size=report_sentences, tokenizer_json=tj)
    added = added_token_mask(tj, len(tokens))
    required = added | family.required_ids(tj, tokens, counts.doc_freq > 0, added)
    required[tokenizer.all_special_ids] = True
    return Counted(family, tj, tokens, counts, required, languages)


def choose(
    counted: Counted,
    *,
    min_fraction: float = 0.0005,
    min_count: int | None = None,
    max_size: int | None = None,
    coverage: float | None = None,
    order: str = "gain",
) -> Selection:
    """The ids to keep (see ``reduce_vocabulary``): by a threshold of sentences, or with ``coverage`` the pieces
    that keep that share of the word tokens tokenised as before (``select_by_coverage``; ``order`` is its)."""
    if counted.languages:
        return _choose_per_language(
            counted, min_fraction=min_fraction, min_count=min_count, max_size=max_size, coverage=coverage, order=order
        )
    family, tj, tokens, counts, required = (
        counted.family,
        counted.tokenizer_json,
        counted.tokens,
        counted.counts,
        counted.required,
    )
    threshold = None
    if coverage is None:
        threshold = frequency_threshold(counts.sentences, min_fraction=min_fraction, min_count=min_count)
    limit, floor = max_size, int(required.sum())  # the selection never goes below the required tokens
    while True:
        if coverage is None:
            chosen = select_ids(counts.doc_freq, required, threshold=threshold, max_size=limit)
        else:
            chosen = select_by_coverage(counts.word_table, required, coverage=coverage, max_size=limit, order=order)
        keep = family.close(tj, chosen, tokens)
        if max_size is None or keep.sum() <= max_size:
            break
        if limit <= floor:  # the closure of the required tokens alone does not fit
            raise EliquareError(
                f"max_size {max_size} is smaller than the {int(keep.sum())} tokens this tokenizer needs to spell "
                f"the corpus (special tokens, characters and the merges that build them); give --max-size "
                f"{int(keep.sum())} or more"
            )
        limit = max(floor, limit - (int(keep.sum()) - max_size))  # the closure added tokens: make room for them
    return Selection(family, tj, tokens, counts, threshold, required, keep, chosen=chosen, coverage=coverage)


def select_vocabulary(
    tokenizer,
    sentences: Iterable[str],
    *,
    min_fraction: float = 0.0005,
    min_count: int | None = None,
    max_size: int | None = None,
    coverage: float | None = None,
    report_sentences: int = 50_000,
) -> Selection:
    """Count the subwords of ``tokenizer`` on ``sentences`` and choose the ones to keep (see ``reduce_vocabulary``).

    ``sentences`` may be ``{language: sentences}``: a subword stays when it is found in ``min_fraction`` (or
    ``min_count``) of the sentences of any one language, or (with ``coverage``) when a language needs it to keep
    that share of its own words unchanged, so that a smaller language keeps its own subwords."""
    return choose(
        count_vocabulary(tokenizer, sentences, report_sentences=report_sentences),
        min_fraction=min_fraction,
        min_count=min_count,
        max_size=max_size,
        coverage=coverage,
    )


def _choose_per_language(counted: Counted, *, min_fraction, min_count, max_size, coverage, order) -> Selection:
    if max_size is not None:
        raise EliquareError(
            "--vocab-max-size caps one language's vocabulary; with several languages give "
            "--vocab-min-fraction, --vocab-min-count or --vocab-coverage (applied to each language)"
        )
    family, tj, tokens, required = counted.family, counted.tokenizer_json, counted.tokens, counted.required
    keeps, languages = {}, {}
    for lang, c in counted.languages.items():
        if coverage is None:
            threshold = frequency_threshold(c.sentences, min_fraction=min_fraction, min_count=min_count)
            keeps[lang] = select_ids(c.doc_freq, required, threshold=threshold)
        else:
            threshold = None
            keeps[lang] = select_by_coverage(c.word_table, required, coverage=coverage, order=order)
        languages[lang] = {
            "sentences": c.sentences,
            "threshold_sentences": threshold,
            "frequent_ids": int((keeps[lang] & ~required).sum()),
        }
    union = np.logical_or.reduce(list(keeps.values()))
    for lang, keep in keeps.items():  # what would be lost without this language's own threshold
        others = np.logical_or.reduce([k for other, k in keeps.items() if other != lang] or [required])
        languages[lang]["only_this_language"] = int((keep & ~others).sum())
    keep = family.close(tj, union, tokens)
    threshold = None if coverage is not None else min(v["threshold_sentences"] for v in languages.values())
    return Selection(
        family, tj, tokens, counted.counts, threshold, required, keep, languages, chosen=union, coverage=coverage
    )


def _sample_figures(ids: list[list[int]], words: int, unk_id: int | None) -> dict:
    n_tokens = sum(map(len, ids))
    n_unk = sum(seq.count(unk_id) for seq in ids) if unk_id is not None else 0
    return {"tokens_per_word": n_tokens / max(words, 1), "unk_rate": n_unk / max(n_tokens, 1)}


def reduce_vocabulary(
    model,
    tokenizer,
    sentences: Iterable[str],
    *,
    min_fraction: float = 0.0005,
    min_count: int | None = None,
    max_size: int | None = None,
    coverage: float | None = None,
    report_sentences: int = 50_000,
) -> ReductionResult:
    """Keep the subwords found in at least ``min_fraction`` of ``sentences`` (or ``min_count`` sentences), or with
    ``coverage`` (instead of a threshold) the pieces that leave that share of the corpus's word tokens tokenised as
    the full vocabulary tokenises them (``eliquare.vocab.select.select_by_coverage``).

    ``model`` (a loaded ``*ForMaskedLM`` or ``*Model``) is reduced in place: word embeddings, MLM decoder
    and bias. Special tokens, added tokens and the pieces that spell every character seen in the corpus
    always stay; ``max_size`` caps the vocabulary, keeping the most frequent subwords (the most frequent words).
    The report's word shares (``retokenised_words``) are of the whole corpus; its sentence figures are measured on
    a fixed random sample of ``report_sentences`` sentences.
    """
    started = time.perf_counter()
    vocab_size = tokenizer.backend_tokenizer.get_vocab_size(with_added_tokens=True)
    rows = model.get_input_embeddings().weight.shape[0]
    if rows < vocab_size:
        raise EliquareError(
            f"the tokenizer has {vocab_size} ids but the model only {rows} embeddings; give the model's own tokenizer"
        )
    selection = select_vocabulary(
        tokenizer,
        sentences,
        min_fraction=min_fraction,
        min_count=min_count,
        max_size=max_size,
        coverage=coverage,
        report_sentences=report_sentences,
    )
    selected = time.perf_counter()
    family, counts, keep, required = selection.family, selection.counts, selection.keep, selection.required
    kept_ids = selection.kept_ids

    new_tj = reduce_tokenizer_json(selection.tokenizer_json, kept_ids, vocab_size, family.reduce_model)
    reduced_tokenizer = load_reduced_tokenizer(tokenizer, new_tj)
    slow = family.slow_files(tokenizer, [selection.tokens[i] for i in kept_ids], new_tj)

    parameters_before = count_parameters(model)
    slice_vocabulary(model, kept_ids)
    parameters_after = count_parameters(model)

    # before/after on the sample: the same sentences through the old and the new tokenizer
    new_ids = count_tokens(
        reduced_tokenizer.backend_tokenizer, counts.sample, sample_size=len(counts.sample)
    ).sample_ids
    as_old = [kept_ids[seq].tolist() for seq in new_ids]
    identical = sum(a == b for a, b in zip(as_old, counts.sample_ids))
    words = sum(len(s.split()) for s in counts.sample)
    before = _sample_figures(counts.sample_ids, words, tokenizer.unk_token_id)
    after = _sample_figures(new_ids, words, reduced_tokenizer.unk_token_id)
    chosen = selection.chosen if selection.chosen is not None else keep
    shares = counts.word_table.shares(keep)

    def r(x: float) -> float:
        return round(float(x), 6)

    report = {
        "tokenizer_family": family.MODEL_TYPE,
        "tokenizer_class": type(tokenizer).__name__,
        "model_class": type(model).__name__,
        "selection": {
            "mode": "threshold" if coverage is None else "coverage",
            "min_fraction": min_fraction if coverage is None else None,
            "min_count": min_count if coverage is None else None,
            "coverage": coverage,
            "max_size": max_size,
            "threshold_sentences": selection.threshold,
        },
        "corpus_sentences": counts.sentences,
        "corpus_words": counts.words,
        "corpus_word_types": shares["word_types"],
        "vocab_size": {"before": vocab_size, "after": len(kept_ids)},
        "kept": {  # frequent: what the threshold (or the coverage) chose
            "frequent": int((keep & chosen & ~required).sum()),
            "special_and_characters": int(required.sum()),
            "dependencies": int((keep & ~chosen & ~required).sum()),
        },
        "embedding_rows": {"before": rows, "after": len(kept_ids)},
        "parameters": {"before": parameters_before, "after": parameters_after},
        # share of the corpus's tokens (original tokenisation) whose id was kept
        "corpus_token_coverage": r(counts.token_freq[keep].sum() / max(counts.token_freq.sum(), 1)),
        # the corpus's words (tokens counted with frequency, and distinct words) that no longer tokenise as the
        # full vocabulary tokenises them
        "retokenised_words": {
            "tokens": r(1 - shares["unchanged_tokens"] / max(shares["word_tokens"], 1)),
            "types": r(1 - shares["unchanged_types"] / max(shares["word_types"], 1)),
        },
        "report_sentences": len(counts.sample),
        # share of the sample's sentences tokenised as the full vocabulary tokenises them
        "identical_tokenisation": r(identical / max(len(counts.sample), 1)),
        "tokens_per_word": {"before": r(before["tokens_per_word"]), "after": r(after["tokens_per_word"])},
        "unk_rate": {"before": r(before["unk_rate"]), "after": r(after["unk_rate"])},
    }
    if selection.languages:
        report["languages"] = selection.languages
    print(
        f"vocab: counted and selected on {counts.sentences:,} sentences in {selected - started:.1f} s, reduced in "
        f"{time.perf_counter() - selected:.1f} s; {len(kept_ids):,} ids kept, {_retokenised(report)}",
        file=sys.stderr,
    )
    return ReductionResult(model=model, tokenizer=reduced_tokenizer, kept_ids=kept_ids, report=report, slow_files=slow)


def _retokenised(report: dict) -> str:
    """The re-tokenised share of words and the unchanged share of sentences, as one clause."""
    words = report.get("retokenised_words") or {}
    return (
        f"words re-tokenised {words.get('tokens', 0):.2%} of tokens, {words.get('types', 0):.2%} of types; "
        f"sentences unchanged {report['identical_tokenisation']:.2%}"
    )


def selection_rule(report: dict) -> str:
    """How the report's ids were chosen, in words: the threshold or the coverage."""
    sel = report["selection"]
    if sel.get("coverage") is not None:
        return f"coverage {sel['coverage']:g} of word tokens"
    return f"threshold {sel['threshold_sentences']:,} of {report['corpus_sentences']:,} sentences"


def format_report(report: dict) -> str:
    """The report as a few readable lines."""
    v, p = report["vocab_size"], report["parameters"]
    tpw, unk = report["tokens_per_word"], report["unk_rate"]
    words = report.get("retokenised_words") or {}
    return "\n".join(
        [
            f"vocabulary   {v['before']:>12,} -> {v['after']:>10,}  ({report['tokenizer_family']}, kept "
            f"{report['kept']['frequent']:,} frequent + {report['kept']['special_and_characters']:,} special/character "
            f"+ {report['kept']['dependencies']:,} dependency pieces; {selection_rule(report)})",
            f"parameters   {p['before']:>12,} -> {p['after']:>10,}  ({p['after'] / p['before']:.1%})",
            f"words        {report['corpus_words']:>12,} ({report.get('corpus_word_types', 0):,} distinct): "
            f"re-tokenised {words.get('tokens', 0):.2%} of the word tokens, {words.get('types', 0):.2%} of the types",
            f"corpus tokens kept {report['corpus_token_coverage']:.2%}; on {report['report_sentences']:,} sentences: "
            f"identical tokenisation {report['identical_tokenisation']:.2%}, tokens/word {tpw['before']:.3f} -> "
            f"{tpw['after']:.3f}, unknown {unk['before']:.4%} -> {unk['after']:.4%}",
        ]
    )


# ---------------------------------------------------------------------------------------------
# `eliquare vocab reduce`


# below this share of sentences tokenised as the full vocabulary tokenises them, the reduction changes most of what
# the model reads
RETOKENISED_NOTICE_BELOW = 0.9


def retokenisation_notice(report: dict, min_count_flag: str = "--vocab-min-count") -> str | None:
    """A notice when the selection re-tokenises many of the corpus's sentences (None when it does not).

    The paper's 0.05% of sentences is a threshold for a Wikipedia; on a small corpus it drops subwords the language
    needs, and words the teacher reads whole the student reads in pieces. On Swahili (39,548 sentences, 38% of them
    tokenised as the full vocabulary tokenises them) that cost the student NER F1 that keeping every corpus subword
    gave back (results/sw-ner-vocab). ``min_count_flag`` names the threshold option of the command; its coverage
    option is the same with ``coverage`` for ``min-count``."""
    same = report["identical_tokenisation"]
    sel = report["selection"]
    coverage = sel.get("coverage")
    if same >= RETOKENISED_NOTICE_BELOW or (coverage or 0) >= 1 or (sel.get("threshold_sentences") or 2) <= 1:
        return None
    words = report.get("retokenised_words") or {}
    head = (
        f"notice: VocabReduce tokenises only {same:.1%} of the corpus's sentences as the full vocabulary does "
        f"({selection_rule(report)}, {report['vocab_size']['after']:,} subwords kept; "
        f"{words.get('tokens', 0):.1%} of the word tokens re-tokenised); the words of the others split into more, "
        "shorter pieces."
    )
    if coverage is not None:
        return (
            f"{head} Give {min_count_flag.replace('min-count', 'coverage')} 0.99 or 1 (1 keeps every subword the "
            "corpus uses); see results/vocab-coverage"
        )
    return (
        f"{head} On a corpus this small give {min_count_flag} 2 or 1 (1 keeps every subword the corpus uses); "
        "see results/sw-ner-vocab"
    )


def reduce_on_corpus(model, tokenizer, corpus, options: CorpusOptions | None = None, **selection) -> ReductionResult:
    """``reduce_vocabulary`` on the clean sentences of ``corpus`` (files, directories, dumps), as distill reads them;
    a corpus of ``LANG=PATH`` entries is selected on language by language (``eliquare.corpus.languages``)."""
    from eliquare.corpus import iter_sentences
    from eliquare.corpus.languages import by_language

    languages = by_language(corpus)
    if languages:
        return reduce_vocabulary(
            model, tokenizer, {lang: iter_sentences(paths, options) for lang, paths in languages.items()}, **selection
        )
    return reduce_vocabulary(model, tokenizer, iter_sentences(corpus, options), **selection)


def reduce_command(cfg: VocabReduceConfig) -> Path:
    """``eliquare vocab reduce``: reduce a saved model's vocabulary to a corpus and write it to ``cfg.out``."""
    from eliquare.corpus import expand_paths

    out = check_output_dir(cfg.out, cfg.overwrite)
    replacement = Replacement(out, "eliquare vocab reduce")  # before anything slow: an OUT.partial in the way
    from eliquare.corpus.languages import corpus_paths

    expand_paths(corpus_paths(cfg.corpus))  # a missing corpus file is reported before the model is loaded
    loaded = load_model(cfg.model, head="as-saved")  # a *ForMaskedLM keeps its head, reduced with it
    model, tokenizer, path = loaded.model, loaded.tokenizer, loaded.path
    if out.exists() and Path(path).exists() and out.resolve() == Path(path).resolve():
        raise EliquareError(f"--out {out} is the model's own directory; write the reduced model elsewhere")
    result = reduce_on_corpus(
        model,
        tokenizer,
        cfg.corpus,
        cfg.corpus_options,
        report_sentences=cfg.report_sentences,
        **vocab_selection(cfg.min_fraction, cfg.min_count, cfg.max_size, cfg.coverage),
    )
    result.report["model"] = cfg.model

    def save(directory: Path) -> None:
        result.save(directory)
        keep_sentence_transformers_files(cfg.model, path, directory, model)

    replacement.write(save)  # built in OUT.partial, swapped in when complete: a failure leaves the old OUT
    print(format_report(result.report))
    if (notice := retokenisation_notice(result.report, "--min-count")) is not None:
        print(notice, file=sys.stderr)
    print(f"reduced model written to {out}")
    return out


def keep_sentence_transformers_files(spec: str, source, out: Path, model) -> None:
    """A sentence-embedding model (one with sentence-transformers files) stays one after its reduction."""
    from eliquare.embedding import embedding_spec_for, save_sentence_transformers

    embedding = embedding_spec_for(spec, source, default=False)
    if embedding is not None:
        save_sentence_transformers(out, embedding, model.config.hidden_size)
