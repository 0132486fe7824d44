"""VocabAmp (issue 16, part 1): target-language pieces added to a multilingual vocabulary, initialised from the
pieces that spell them."""

import json

import pytest
import tiny
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from eliquare.cli import main
from eliquare.errors import EliquareError
from eliquare.vocab.amp import amplify_vocabulary, tokens_per_word


@pytest.fixture(scope="module")
def amp_corpus(tmp_path_factory):
    # the synthetic language with long words the tiny tokenizers never saw whole
    words = ["kiswahilimaridadi", "mwalimumkuu", "shuleyasekondari", "kitabuchakale"]
    lines = [f"{s} {words[i % 4]} {words[(i + 1) % 4]}" for i, s in enumerate(tiny.synthetic_sentences(300, seed=4))]
    path = tmp_path_factory.mktemp("amp") / "corpus.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("which", ["xlmr", "bert"])
def test_amplify_adds_shortening_pieces_initialised_by_hand(which, tiny_xlmr, tiny_bert, amp_corpus):
    path = tiny_xlmr if which == "xlmr" else tiny_bert
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForMaskedLM.from_pretrained(path)
    old_rows = model.get_input_embeddings().weight.detach().clone()
    old_bias = model.get_output_embeddings().bias.detach().clone()
    sentences = amp_corpus.read_text().splitlines()
    result = amplify_vocabulary(model, tok, sentences, add=10, trained_size=200)
    new_tok = result.tokenizer
    assert len(new_tok) == len(tok) + len(result.added)
    assert result.report["tokens_per_word"]["after"] < result.report["tokens_per_word"]["before"]
    assert tokens_per_word(new_tok, sentences) == pytest.approx(result.report["tokens_per_word"]["after"], abs=1e-4)
    rows = model.get_input_embeddings().weight
    assert rows.shape[0] == len(new_tok)
    for k, (piece, old_ids, _) in enumerate(result.added):
        i = len(tok) + k
        assert new_tok.convert_ids_to_tokens(i) == piece
        assert torch.allclose(rows[i], old_rows[old_ids].mean(0))  # the mean of the pieces that spelled it
        assert torch.allclose(model.get_output_embeddings().bias[i], old_bias[old_ids].mean(0))
    assert torch.equal(rows[: len(tok)], old_rows)  # the old rows are untouched
    assert model.get_output_embeddings().weight.data_ptr() == rows.data_ptr()  # still tied
    # a new piece is used where it applies
    piece = result.added[0][0]
    word = piece.lstrip("\u2581")
    assert piece in new_tok.tokenize(f"habari {word}")


def test_vocab_amp_command_writes_a_loadable_model(tiny_xlmr, amp_corpus, tmp_path, capsys):
    out = tmp_path / "amp"
    assert main(["vocab", "amp", "--model", str(tiny_xlmr), "--corpus", str(amp_corpus), "--out", str(out),
                 "--add", "5", "--trained-vocab-size", "200"]) == 0
    report = json.loads((out / "vocab_amp_report.json").read_text())
    assert 1 <= report["added"] <= 5  # at most --add: as many as the trained tokenizer offers
    assert report["vocab_size"]["after"] == report["vocab_size"]["before"] + report["added"]
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForMaskedLM.from_pretrained(out)
    with torch.no_grad():
        logits = model(**tok("mwalimumkuu kitabuchakale", return_tensors="pt")).logits
    assert logits.shape[-1] == len(tok)
    assert main(["vocab", "amp", "--model", str(tiny_xlmr), "--corpus", str(amp_corpus), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_amplify_refuses_what_it_cannot_do(tiny_xlmr, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_xlmr)
    model = AutoModelForMaskedLM.from_pretrained(tiny_xlmr)
    with pytest.raises(EliquareError, match="no sentences"):
        amplify_vocabulary(model, tok, [], add=5)
