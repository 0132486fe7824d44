"""eliquare.config: one dataclass per stage, built from defaults < YAML < flags; option groups given flat."""

from __future__ import annotations

import argparse

import pytest

from eliquare.config import (
    CorpusOptions,
    DistillConfig,
    FinetuneConfig,
    FitHeadConfig,
    VocabReduceConfig,
    add_dataclass_arguments,
    build_config,
    config_from_cli,
)
from eliquare.errors import EliquareError


def _parse(cls, argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_dataclass_arguments(parser, cls)
    return parser.parse_args(argv)


@pytest.mark.parametrize("cls", [DistillConfig, VocabReduceConfig, FitHeadConfig])
def test_corpus_options_are_flat_flags_and_one_object(cls):
    argv = ["--corpus", "c.txt", "--out", "o", "--min-words", "5", "--max-sentences", "100"]
    if cls is VocabReduceConfig:
        argv += ["--model", "m"]
    cfg = config_from_cli(cls, _parse(cls, argv))
    assert cfg.corpus_options == CorpusOptions(min_words=5, max_chars=2000, max_sentences=100)
    with pytest.raises(SystemExit):  # the group itself is not an option
        _parse(cls, argv + ["--corpus-options", "x"])


def test_yaml_gives_a_group_flat_or_nested_and_flags_win(tmp_path):
    (tmp_path / "a.yaml").write_text("corpus: [c.txt]\nout: o\nmin_words: 4\n")
    (tmp_path / "b.yaml").write_text("corpus: [c.txt]\nout: o\ncorpus_options: {min-words: 6, max_chars: 99}\n")
    a = config_from_cli(DistillConfig, _parse(DistillConfig, ["--config", str(tmp_path / "a.yaml")]))
    b = config_from_cli(
        DistillConfig, _parse(DistillConfig, ["--config", str(tmp_path / "b.yaml"), "--max-chars", "50"])
    )
    assert (a.corpus_options.min_words, a.corpus_options.max_chars) == (4, 2000)
    assert (b.corpus_options.min_words, b.corpus_options.max_chars) == (6, 50)


def test_bad_options_are_named():
    with pytest.raises(EliquareError, match="unknown option 'min_word'"):
        build_config(DistillConfig, ("x", {"corpus": ["c"], "out": "o", "min_word": 3}))
    with pytest.raises(EliquareError, match="'corpus_options' has no option 'temperature'"):
        build_config(DistillConfig, ("x", {"corpus": ["c"], "out": "o", "corpus_options": {"temperature": 3}}))
    with pytest.raises(EliquareError, match="option 'max_sentences' got 'many'"):
        build_config(DistillConfig, ("x", {"corpus": ["c"], "out": "o", "max_sentences": "many"}))
    with pytest.raises(EliquareError, match="max_sentences must be at least 1"):
        build_config(DistillConfig, ("x", {"corpus": ["c"], "out": "o", "max_sentences": 0}))
    with pytest.raises(EliquareError, match="missing required option\\(s\\) --out"):
        build_config(DistillConfig, ("x", {"corpus": ["c"]}))


def test_an_earlier_distill_record_in_todays_names():
    from eliquare.config import upgrade_distill_record

    old = {
        "corpus": ["c"],
        "out": "o",
        "layer_map": "alternate",
        "min_words": 4,
        "max_chars": 2000,
        "max_sentences": None,
    }
    new = upgrade_distill_record(old)
    assert new["layer_map"] == "evenly-spaced" and "min_words" not in new
    assert new["corpus_options"] == {"min_words": 4, "max_chars": 2000, "max_sentences": None}
    assert upgrade_distill_record(new) == new and old["layer_map"] == "alternate"  # idempotent, input untouched


@pytest.mark.parametrize(
    "verb, flags, expect",
    [
        ("distill", ["--epochs", "0"], "epochs is 0: give a positive --epochs .*or --max-steps"),
        ("distill", ["--epochs", "-1"], "epochs is -1: give a positive --epochs"),
        ("distill", ["--learning-rate", "-1"], "learning_rate must be positive"),
        ("distill", ["--logging-steps", "0"], "logging_steps must be at least 1"),
        ("distill", ["--eval-steps", "0"], "eval_steps must be at least 1"),
        ("distill", ["--save-total-limit", "0"], "save_total_limit must be at least 1 \\(the minimum"),
        ("finetune", ["--learning-rate", "-1"], "learning_rate must be positive"),
        ("finetune", ["--logging-steps", "0"], "logging_steps must be at least 1"),
        ("finetune", ["--epochs", "0"], "give a positive --epochs or --max-steps"),
    ],
)
def test_bad_numbers_get_one_line_before_anything_runs(verb, flags, expect, tmp_path, capsys):
    """Checked by the stage's config (nothing is read, loaded or written): a line, not a traceback after the run."""
    from oneline import assert_one_error

    from eliquare.cli import main

    out = tmp_path / "out"
    given = (
        ["--corpus", str(tmp_path / "c.txt")]
        if verb == "distill"
        else ["--model", str(tmp_path / "m"), "--task", "pos", "--train", str(tmp_path / "t.conllu")]
    )
    code = main([verb, *given, "--out", str(out), *flags])
    assert_one_error(code, capsys.readouterr().err, expect)
    assert not out.exists()


def test_epochs_zero_is_fine_with_max_steps():
    cfg = build_config(DistillConfig, ("x", {"corpus": ["c"], "out": "o", "epochs": 0, "max_steps": 5}))
    assert cfg.max_steps == 5


@pytest.mark.parametrize("cls", [DistillConfig, FinetuneConfig])
def test_help_shows_every_option_once_under_the_sections_a_user_reads(cls):
    import dataclasses

    from eliquare.config.fields import help_sections

    sections = help_sections(cls)
    placed = [name for _, _, names in sections for name in names]
    assert sorted(placed) == sorted(f.name for f in dataclasses.fields(cls) if f.init)  # each once, none left out
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, cls)
    text = parser.format_help()
    at = [text.index(f"\n{title}:\n") for title, _, _ in sections]
    assert at == sorted(at)  # in the order the class gives
    first_title, _, first_names = sections[0]
    first = text[at[0] : at[1]]
    assert all("--" + name.replace("_", "-") in first for name in first_names if name != "corpus_options")
    # the usage line leads with the first section's options too
    usage = text[: text.index("\n\n")]
    assert usage.index("--" + first_names[0].replace("_", "-")) < usage.index(
        "--" + sections[-1][2][0].replace("_", "-")
    )


def test_an_option_group_field_is_shown_in_its_section():
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, DistillConfig)
    text = parser.format_help()
    corpus = text[text.index("\ncorpus:\n") : text.index("\nvocabulary:\n")]
    assert "--min-words" in corpus and "--max-sentences" in corpus and "--vocab-reduce" not in corpus
