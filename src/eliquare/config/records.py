"""Records written by an earlier eliquare read in today's option names (``distillation.json``'s ``config``)."""

from __future__ import annotations

import dataclasses

from eliquare.config.distill import DistillConfig
from eliquare.config.fields import option_defaults
from eliquare.config.options import LAYER_MAP_ALIASES, PAPER_ALPHA_MLM, CorpusOptions


def upgrade_distill_record(options: dict) -> dict:
    """A ``DistillConfig`` recorded by an earlier eliquare (``distillation.json``'s ``config``) in today's names:
    the corpus options grouped, the layer map's old name replaced. Nothing is changed in meaning."""
    options = dict(options)
    if "corpus_options" not in options:
        options["corpus_options"] = {
            k: options.pop(k) for k in ("min_words", "max_chars", "max_sentences") if k in options
        }
        options["corpus_options"] = {**dataclasses.asdict(CorpusOptions()), **options["corpus_options"]}
    if options.get("layer_map") in LAYER_MAP_ALIASES:
        options["layer_map"] = LAYER_MAP_ALIASES[options["layer_map"]]
    if "objective" not in options and options.get("alpha_mlm") == PAPER_ALPHA_MLM:
        options["alpha_mlm"] = None  # before the embedding objective: the default then and now
    if options:  # an option added since: the record's run had its default behaviour
        options = {**option_defaults(DistillConfig), **options}
    return options
