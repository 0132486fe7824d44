"""VocabAmp : target-language pieces added to a multilingual vocabulary, initialised from the
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
    assert (
        main(
            [
                "vocab",
                "amp",
                "--model",
                str(tiny_xlmr),
                "--corpus",
                str(amp_corpus),
                "--out",
                str(out),
                "--add",
                "5",
                "--trained-vocab-size",
                "200",
            ]
        )
        == 0
    )
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


def test_cross_tokenisation_aligns_words_that_split_differently():
    from eliquare.vocab.amp import CrossTokenisation

    # old vocabulary 0..9 (0 pad, 1 mask); new piece 10 = old 5 6 ("▁hab" "ari"), new piece 11 = old 7 8 9
    cross = CrossTokenisation(10, [[5, 6], [7, 8, 9]], mask_token_id=1, pad_token_id=0)
    ids = torch.tensor([[2, 10, 4, 11, 3], [2, 4, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    labels = torch.full_like(ids, -100)
    labels[0, 2] = 4  # an old piece masked: a span of one, soft targets there
    labels[0, 3] = 11  # a new piece masked: its whole span is masked for the teacher, no soft targets
    ids_masked = ids.clone()
    ids_masked[0, 2], ids_masked[0, 3] = 1, 1
    view = cross.teacher_batch(ids_masked, mask, labels)
    assert view["input_ids"][0].tolist() == [2, 5, 6, 1, 1, 1, 1, 3]
    assert view["owner"][0].tolist() == [0, 1, 1, 2, 3, 3, 3, 4]
    assert view["input_ids"][1, :3].tolist() == [2, 4, 3] and view["owner"][1].tolist() == [0, 1, 2, -1, -1, -1, -1, -1]
    assert view["labels"][0].tolist() == [-100, -100, -100, 4, -100, -100, -100, -100]
    assert view["ce_positions"].tolist() == [True, False]  # of the two masked student tokens, the old piece
    hidden = torch.arange(2 * 8 * 2, dtype=torch.float).view(2, 8, 2)
    pooled = cross.pooled(hidden, view["owner"], ids.shape)
    assert torch.equal(pooled[0, 1], hidden[0, 1:3].mean(0)) and torch.equal(pooled[0, 3], hidden[0, 4:7].mean(0))
    assert torch.equal(pooled[0, 4], hidden[0, 7]) and torch.equal(pooled[1, 3], torch.zeros(2))


def test_distill_with_vocab_amp(tiny_xlmr, amp_corpus, tmp_path, capsys):
    out = tmp_path / "amp-student"
    code = main(
        [
            "distill",
            "--teacher",
            str(tiny_xlmr),
            "--corpus",
            str(amp_corpus),
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "c"),
            "--vocab-amp",
            "6",
            "--vocab-amp-trained-size",
            "200",
            "--max-steps",
            "4",
            "--eval-steps",
            "2",
            "--student-layers",
            "2",
            "--batch-size",
            "8",
            "--gradient-accumulation",
            "1",
            "--vocab-reduce",
            "pre",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    record = json.loads((out / "distillation.json").read_text())
    added = record["vocab_amp"]["added"]
    assert 1 <= added <= 6 and {"eval_ce", "eval_cos", "eval_mlm"} <= set(record["validation"][-1])
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForMaskedLM.from_pretrained(out)
    assert model.config.vocab_size == len(tok) == record["vocab_reduce"]["vocab_size"]["after"] + added
    assert (out / "vocab_amp_report.json").is_file() and not (out / "sentencepiece.bpe.model").exists()
    code = main(
        [
            "distill",
            "--teacher",
            str(tiny_xlmr),
            "--corpus",
            str(amp_corpus),
            "--out",
            str(tmp_path / "x"),
            "--vocab-amp",
            "5",
            "--vocab-reduce",
            "post",
        ]
    )
    assert code == 2 and "--vocab-amp works with" in capsys.readouterr().err
