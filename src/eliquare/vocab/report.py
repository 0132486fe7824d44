"""What a vocabulary reduction did, measured: the report written to ``vocab_report.json`` (and into
``distillation.json`` and the model card): the vocabulary and parameters before and after, what was kept and why,
the share of the corpus's word tokens and types re-tokenised, and on a fixed sample of sentences the share tokenised
as the full vocabulary tokenises them, tokens per word and unknown tokens, before and after. Also the report as a
few readable lines (``format_report``) and the notice that a selection re-tokenises much of the corpus
(``retokenisation_notice``)."""

from __future__ import annotations

import numpy as np

from eliquare.vocab.choose import Selection
from eliquare.vocab.select import count_tokens


def _sample_figures(ids: list[list[int]], words: int, unk_id: int | None) -> dict:
    n_tokens = sum(map(len, ids))
    n_unk = sum(seq.count(unk_id) for seq in ids) if unk_id is not None else 0
    return {"tokens_per_word": n_tokens / max(words, 1), "unk_rate": n_unk / max(n_tokens, 1)}


def _r(x: float) -> float:
    return round(float(x), 6)


def _sample_comparison(counts, kept_ids: np.ndarray, tokenizer, reduced_tokenizer) -> dict:
    """Before/after on the sample: the same sentences through the old and the new tokenizer."""
    new_ids = count_tokens(
        reduced_tokenizer.backend_tokenizer, counts.sample, sample_size=len(counts.sample)
    ).sample_ids
    as_old = [kept_ids[seq].tolist() for seq in new_ids]
    identical = sum(a == b for a, b in zip(as_old, counts.sample_ids))
    words = sum(len(s.split()) for s in counts.sample)
    before = _sample_figures(counts.sample_ids, words, tokenizer.unk_token_id)
    after = _sample_figures(new_ids, words, reduced_tokenizer.unk_token_id)
    return {
        "report_sentences": len(counts.sample),
        # share of the sample's sentences tokenised as the full vocabulary tokenises them
        "identical_tokenisation": _r(identical / max(len(counts.sample), 1)),
        "tokens_per_word": {"before": _r(before["tokens_per_word"]), "after": _r(after["tokens_per_word"])},
        "unk_rate": {"before": _r(before["unk_rate"]), "after": _r(after["unk_rate"])},
    }


def reduction_report(
    selection: Selection,
    tokenizer,
    reduced_tokenizer,
    model,
    *,
    vocab_size: int,
    rows: int,
    parameters: tuple[int, int],
    rule: dict,
) -> dict:
    """The report of a reduction of ``tokenizer`` (``vocab_size`` ids, ``rows`` embedding rows) to
    ``reduced_tokenizer`` and of ``model`` from ``parameters[0]`` to ``parameters[1]`` parameters; ``rule``: the
    selection's ``min_fraction``, ``min_count``, ``max_size`` and ``coverage`` as asked."""
    counts, keep, required, kept_ids = selection.counts, selection.keep, selection.required, selection.kept_ids
    coverage = rule["coverage"]
    chosen = selection.chosen if selection.chosen is not None else keep
    assert counts.word_table is not None  # count_tokens fills it
    shares = counts.word_table.shares(keep)
    report = {
        "tokenizer_family": selection.family.MODEL_TYPE,
        "tokenizer_class": type(tokenizer).__name__,
        "model_class": type(model).__name__,
        "selection": {
            "mode": "threshold" if coverage is None else "coverage",
            "min_fraction": rule["min_fraction"] if coverage is None else None,
            "min_count": rule["min_count"] if coverage is None else None,
            "coverage": coverage,
            "max_size": rule["max_size"],
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
        "parameters": {"before": parameters[0], "after": parameters[1]},
        # share of the corpus's tokens (original tokenisation) whose id was kept
        "corpus_token_coverage": _r(counts.token_freq[keep].sum() / max(counts.token_freq.sum(), 1)),
        # the corpus's words (tokens counted with frequency, and distinct words) that no longer tokenise as the
        # full vocabulary tokenises them
        "retokenised_words": {
            "tokens": _r(1 - shares["unchanged_tokens"] / max(shares["word_tokens"], 1)),
            "types": _r(1 - shares["unchanged_types"] / max(shares["word_types"], 1)),
        },
        **_sample_comparison(counts, kept_ids, tokenizer, reduced_tokenizer),
    }
    if selection.languages:
        report["languages"] = selection.languages
    return report


def retokenised_summary(report: dict) -> str:
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
