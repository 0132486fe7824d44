"""Students for several languages : a corpus per language, sampling weights, VocabReduce with a
threshold per language, and a distillation that records it all."""

import json

import pytest
import tiny

from eliquare.cli import main
from eliquare.corpus.languages import by_language, corpus_paths, interleaved_rows, parse_weights, sampled_rows
from eliquare.errors import EliquareError

FAST = ["--student-layers", "2", "--batch-size", "8", "--gradient-accumulation", "1", "--logging-steps", "5"]
# a second "language": the synthetic sentences' words with a suffix the tiny tokenizer spells in pieces
OTHER = "zulu"


@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("languages")
    big = tiny.write_corpus(root / "big.txt", n=400, seed=0)
    small = root / "small.txt"
    words = ["karibu" + OTHER, "asante" + OTHER, "rafiki" + OTHER]
    lines = [f"{s} {words[i % 3]}" for i, s in enumerate(tiny.synthetic_sentences(40, seed=9))]
    small.write_text("\n".join(lines) + "\n")
    return big, small


def test_entries_and_weights():
    assert by_language(["a.txt", "b.txt"]) is None
    assert by_language(["sw=a.txt", "sl=b.txt", "sw=c.txt"]) == {"sw": ["a.txt", "c.txt"], "sl": ["b.txt"]}
    assert corpus_paths(["sw=a.txt", "sl=b.txt"]) == ["a.txt", "b.txt"]
    with pytest.raises(EliquareError, match="has no language"):
        by_language(["sw=a.txt", "b.txt"])
    assert parse_weights("sw=3,sl=1", ["sw", "sl"]) == {"sw": 0.75, "sl": 0.25}
    assert parse_weights(None, ["sw"]) is None
    for bad, message in (
        ("sw=0.7", "no weight for sl"),
        ("sw=x,sl=1", "not LANG=WEIGHT"),
        ("sw=0,sl=0", "all 0"),
        ("sw=1,sl=1,fr=1", "names fr"),
    ):
        with pytest.raises(EliquareError, match=message):
            parse_weights(bad, ["sw", "sl"])
    rows = sampled_rows(3, 7, seed=0)
    assert len(rows) == 7 and sorted(rows[:3]) == [0, 1, 2] and sorted(rows[3:6]) == [0, 1, 2]
    assert interleaved_rows([3, 1]) == [(0, 0), (1, 0), (0, 1), (0, 2)]


def test_vocabulary_keeps_each_languages_subwords(tiny_bert, two_corpora):
    from transformers import AutoTokenizer

    from eliquare.corpus import iter_sentences
    from eliquare.vocab.choose import select_vocabulary

    big, small = two_corpora
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    pooled = select_vocabulary(tok, iter_sentences([big, small]), min_fraction=0.1)
    per = select_vocabulary(tok, {"big": iter_sentences([big]), "small": iter_sentences([small])}, min_fraction=0.1)
    small_ids = {i for s in small.read_text().splitlines() for i in tok(s, add_special_tokens=False)["input_ids"]}
    only_small = [i for i in small_ids if per.keep[i] and not pooled.keep[i]]
    assert only_small, "the per-language threshold keeps subwords of the small language that pooling drops"
    assert per.languages["small"]["threshold_sentences"] == 4 and per.languages["big"]["threshold_sentences"] == 40
    assert per.languages["small"]["only_this_language"] > 0
    assert (per.keep >= pooled.keep).all()  # nothing the pooled selection keeps is lost
    with pytest.raises(EliquareError, match="caps one language"):
        select_vocabulary(tok, {"big": iter_sentences([big])}, max_size=100)


def test_bilingual_distillation(tiny_xlmr, two_corpora, tmp_path, capsys):
    big, small = two_corpora
    out = tmp_path / "bi"
    code = main(
        [
            "distill",
            "--teacher",
            str(tiny_xlmr),
            "--corpus",
            f"sw={big}",
            "--corpus",
            f"zu={small}",
            "--language-weights",
            "sw=0.5,zu=0.5",
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "c"),
            "--vocab-reduce",
            "pre",
            "--vocab-min-fraction",
            "0.1",
            "--max-steps",
            "3",
            "--keep-checkpoints",
            *FAST,
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    record = json.loads((out / "distillation.json").read_text())
    langs = record["languages"]
    assert set(langs) == {"sw", "zu"} and langs["sw"]["share"] == pytest.approx(0.5, abs=0.01)
    assert langs["zu"]["sampled_train_sentences"] > langs["zu"]["train_sentences"]  # the small corpus is repeated
    assert set(record["vocab_reduce"]["languages"]) == {"sw", "zu"}
    settings = json.loads((out.parent / f"{out.name}.checkpoints" / "run_settings.json").read_text())["settings"]
    assert set(settings["languages"]) == {"sw", "zu"} and settings["language_weights"] == "sw=0.5,zu=0.5"
    # bad weights are refused before anything is written
    code = main(
        [
            "distill",
            "--teacher",
            str(tiny_xlmr),
            "--corpus",
            f"sw={big}",
            "--corpus",
            f"zu={small}",
            "--language-weights",
            "sw=1",
            "--out",
            str(tmp_path / "bad"),
        ]
    )
    assert code == 2 and "no weight for zu" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    code = main(
        [
            "distill",
            "--teacher",
            str(tiny_xlmr),
            "--corpus",
            str(big),
            "--language-weights",
            "sw=1",
            "--out",
            str(tmp_path / "bad"),
        ]
    )
    assert code == 2 and "needs a corpus per language" in capsys.readouterr().err
