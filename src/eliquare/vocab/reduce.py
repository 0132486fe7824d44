"""VocabReduce (Section 5 of the paper): shrink a multilingual model's vocabulary to one language.

A multilingual vocabulary spends most of a small model's parameters on subwords the target language
never uses (multilingual-e5-small: 96 M of its 117 M parameters are the 250k x 384 embedding matrix).
``reduce_vocabulary`` counts the subwords on a target-language corpus, keeps the frequent ones (plus
the special tokens and every piece needed to spell the characters of the corpus; ``eliquare.vocab.choose``), and
cuts tokenizer, embeddings, MLM decoder and bias down to them, reporting what that changed
(``eliquare.vocab.report``). Works before distillation (on the teacher) and after (on the student);
``eliquare vocab reduce`` does it for a saved model.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eliquare.atomic import Replacement
from eliquare.config import CorpusOptions, VocabReduceConfig, vocab_selection
from eliquare.errors import EliquareError, check_output_dir
from eliquare.models import count_parameters, load_model
from eliquare.vocab.choose import choose, count_vocabulary, select_vocabulary
from eliquare.vocab.report import format_report, reduction_report, retokenisation_notice, retokenised_summary
from eliquare.vocab.slicing import slice_vocabulary
from eliquare.vocab.tokenizer_json import (
    load_reduced_tokenizer,
    reduce_tokenizer_json,
)

# the Python API of VocabReduce, importable from this module with the selection it is built on
__all__ = [
    "ReductionResult",
    "choose",
    "count_vocabulary",
    "format_report",
    "keep_sentence_transformers_files",
    "reduce_command",
    "reduce_on_corpus",
    "reduce_vocabulary",
    "retokenisation_notice",
    "save_tokenizer",
    "select_vocabulary",
]

REPORT_FILE = "vocab_report.json"


@dataclass
class ReductionResult:
    model: Any  # the model passed in, reduced in place
    tokenizer: Any  # a new tokenizer of the same class
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
    rule: dict[str, Any] = dict(min_fraction=min_fraction, min_count=min_count, max_size=max_size, coverage=coverage)
    selection = select_vocabulary(tokenizer, sentences, **rule, report_sentences=report_sentences)
    selected = time.perf_counter()
    kept_ids = selection.kept_ids

    new_tj = reduce_tokenizer_json(selection.tokenizer_json, kept_ids, vocab_size, selection.family.reduce_model)
    reduced_tokenizer = load_reduced_tokenizer(tokenizer, new_tj)
    slow = selection.family.slow_files(tokenizer, [selection.tokens[i] for i in kept_ids], new_tj)

    parameters_before = count_parameters(model)
    slice_vocabulary(model, kept_ids)
    parameters_after = count_parameters(model)

    report = reduction_report(
        selection,
        tokenizer,
        reduced_tokenizer,
        model,
        vocab_size=vocab_size,
        rows=rows,
        parameters=(parameters_before, parameters_after),
        rule=rule,
    )
    print(
        f"vocab: counted and selected on {selection.counts.sentences:,} sentences in {selected - started:.1f} s, "
        f"reduced in {time.perf_counter() - selected:.1f} s; {len(kept_ids):,} ids kept, {retokenised_summary(report)}",
        file=sys.stderr,
    )
    return ReductionResult(model=model, tokenizer=reduced_tokenizer, kept_ids=kept_ids, report=report, slow_files=slow)


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
