"""Tiny random teachers of the architectures beyond BERT/XLM-R, each with a tokenizer of its own family trained here
on the synthetic corpus (no hub, no download): ModernBERT (byte-level BPE with the prefix space on, and again with a
SentencePiece-style BPE of byte fallback, Gemma's kind), DeBERTa-v2 in
mDeBERTa-v3's configuration (SentencePiece unigram), DistilBERT (WordPiece) and an ELECTRA discriminator
(WordPiece; saved without a masked-LM head, as discriminators are).

Training a tokenizer breaks ties in an order that can differ between processes; the tests check properties
(identical tokenisation, equal states, per-layer kinds), not particular pieces.
"""

from __future__ import annotations

from pathlib import Path

import tiny

HIDDEN, LAYERS, HEADS = 32, 4, 2
WORDPIECE_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


# text of other languages in the tokenizers' training data only: their pieces are what VocabReduce drops
OTHER_LANGUAGES = [
    "The quick brown fox jumps over the lazy dog.",
    "Ljubljana je glavno mesto Slovenije.",
    "Where does the river go when the winter comes?",
    "Vreme je danes lepo in toplo.",
]


def _sentences() -> list[str]:
    return tiny.synthetic_sentences(400, seed=123) + OTHER_LANGUAGES * 20


def _bert_style_processor(tok, pair_types: bool = True):
    from tokenizers import processors

    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    pair = "[CLS] $A [SEP] $B:1 [SEP]:1" if pair_types else "[CLS] $A [SEP] $B [SEP]"
    return processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair=pair, special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )


def wordpiece_tokenizer(vocab_size: int = 300):
    """A cased WordPiece tokenizer (mBERT's kind) trained on the synthetic corpus."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(
        _sentences(), trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=WORDPIECE_SPECIALS)
    )
    tok.post_processor = _bert_style_processor(tok)
    return tok


def _save(model, tokenizer, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def byte_level_bpe_tokenizer():
    """ModernBERT's kind: byte-level BPE; the pre-tokenizer adds the prefix space, so that a word on its own (a
    word-level task's input) gets the pieces it has in running text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        _sentences(),
        trainers.BpeTrainer(
            vocab_size=500, special_tokens=WORDPIECE_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tok.post_processor = _bert_style_processor(tok, pair_types=False)
    return tok, dict(unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", mask_token="[MASK]")


def sentencepiece_bpe_tokenizer():
    """Gemma's kind (SentencePiece-style BPE): pieces of characters, ``▁`` for a space, the 256 ``<0xNN>`` byte
    pieces for characters without a piece of their own (byte fallback)."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    metaspace = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trained = Tokenizer(models.BPE(unk_token="<unk>"))
    trained.pre_tokenizer = metaspace
    trained.train_from_iterator(_sentences(), trainers.BpeTrainer(vocab_size=400, special_tokens=specials))
    model = json.loads(trained.to_str())["model"]
    vocab = dict(model["vocab"])
    for b in range(256):  # after the trained pieces, as SentencePiece models keep them (ids need not be first)
        vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.add_special_tokens(specials)
    tok.pre_tokenizer = metaspace
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    bos, eos = tok.token_to_id("<bos>"), tok.token_to_id("<eos>")
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", pair="<bos> $A <eos> $B <eos>", special_tokens=[("<bos>", bos), ("<eos>", eos)]
    )
    return tok, dict(
        unk_token="<unk>",
        cls_token="<bos>",
        sep_token="<eos>",
        pad_token="<pad>",
        mask_token="<mask>",
        bos_token="<bos>",
        eos_token="<eos>",
    )


def build_tiny_modernbert(out_dir: Path, seed: int = 0, tokenizer: str = "byte-level") -> Path:
    """A ModernBertForMaskedLM (layers: full, sliding, sliding, full attention; a window of 8 tokens, shorter than
    the corpus's sentences) with a byte-level BPE tokenizer, or (``tokenizer="sentencepiece"``) a SentencePiece-style
    one."""
    import torch
    from transformers import ModernBertConfig, ModernBertForMaskedLM, PreTrainedTokenizerFast

    tok, specials = byte_level_bpe_tokenizer() if tokenizer == "byte-level" else sentencepiece_bpe_tokenizer()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, model_max_length=128, model_input_names=["input_ids", "attention_mask"], **specials
    )
    torch.manual_seed(seed)
    config = ModernBertConfig(
        vocab_size=len(fast),
        hidden_size=HIDDEN,
        intermediate_size=HIDDEN * 2,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        max_position_embeddings=128,
        local_attention=8,
        global_attn_every_n_layers=3,
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.cls_token_id,
        eos_token_id=fast.sep_token_id,
        cls_token_id=fast.cls_token_id,
        sep_token_id=fast.sep_token_id,
    )
    return _save(ModernBertForMaskedLM(config), fast, out_dir)


def build_tiny_modernbert_sentencepiece(out_dir: Path, seed: int = 0) -> Path:
    return build_tiny_modernbert(out_dir, seed, tokenizer="sentencepiece")


# mDeBERTa-v3's configuration: relative positions in 16 buckets shared by all layers, normalised; no absolute
# positions, no token types
DEBERTA_V2_OPTIONS = dict(
    relative_attention=True,
    position_buckets=16,
    max_relative_positions=-1,
    pos_att_type=["p2c", "c2p"],
    position_biased_input=False,
    norm_rel_ebd="layer_norm",
    share_att_key=True,
    type_vocab_size=0,
)


def build_tiny_deberta_v2(out_dir: Path, seed: int = 0) -> Path:
    """A DebertaV2ForMaskedLM configured as mDeBERTa-v3 (``DEBERTA_V2_OPTIONS``) with a unigram tokenizer, [MASK]
    last as in mDeBERTa's."""
    import json

    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import DebertaV2Config, DebertaV2ForMaskedLM, DebertaV2Tokenizer

    trained = Tokenizer(models.Unigram())
    trained.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trained.train_from_iterator(
        _sentences(),
        trainers.UnigramTrainer(vocab_size=300, special_tokens=["[PAD]", "[CLS]", "[SEP]", "[UNK]"], unk_token="[UNK]"),
    )
    vocab = [tuple(p) for p in json.loads(trained.to_str())["model"]["vocab"]] + [("[MASK]", 0.0)]
    fast = DebertaV2Tokenizer(vocab=vocab, model_max_length=128)
    torch.manual_seed(seed)
    config = DebertaV2Config(
        vocab_size=len(fast),
        hidden_size=HIDDEN,
        intermediate_size=HIDDEN * 2,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        max_position_embeddings=128,
        pad_token_id=fast.pad_token_id,
        **DEBERTA_V2_OPTIONS,
    )
    return _save(DebertaV2ForMaskedLM(config), fast, out_dir)


def build_tiny_distilbert(out_dir: Path, seed: int = 0) -> Path:
    import torch
    from transformers import DistilBertConfig, DistilBertForMaskedLM, DistilBertTokenizerFast

    fast = DistilBertTokenizerFast(
        tokenizer_object=wordpiece_tokenizer(),
        do_lower_case=False,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    torch.manual_seed(seed)
    config = DistilBertConfig(
        vocab_size=len(fast),
        dim=HIDDEN,
        hidden_dim=HIDDEN * 2,
        n_layers=LAYERS,
        n_heads=HEADS,
        max_position_embeddings=128,
        pad_token_id=fast.pad_token_id,
    )
    return _save(DistilBertForMaskedLM(config), fast, out_dir)


def build_tiny_electra(out_dir: Path, seed: int = 0) -> Path:
    """An ElectraForPreTraining (a discriminator: no masked-LM head in the checkpoint) whose embeddings are narrower
    than its layers (embedding_size 16, projected to 32)."""
    import torch
    from transformers import ElectraConfig, ElectraForPreTraining, ElectraTokenizerFast

    fast = ElectraTokenizerFast(
        tokenizer_object=wordpiece_tokenizer(),
        do_lower_case=False,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    torch.manual_seed(seed)
    config = ElectraConfig(
        vocab_size=len(fast),
        embedding_size=16,
        hidden_size=HIDDEN,
        intermediate_size=HIDDEN * 2,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        max_position_embeddings=128,
        pad_token_id=fast.pad_token_id,
    )
    return _save(ElectraForPreTraining(config), fast, out_dir)


BUILDERS = {
    "modernbert": build_tiny_modernbert,
    "modernbert-sentencepiece": build_tiny_modernbert_sentencepiece,
    "deberta-v2": build_tiny_deberta_v2,
    "distilbert": build_tiny_distilbert,
    "electra": build_tiny_electra,
}
