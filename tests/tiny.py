"""Tiny real models and tokenizers built inside the tests (no hub, no download).

- a BERT with a WordPiece tokenizer trained on the fly,
- an XLM-R with a SentencePiece-style unigram tokenizer trained on the fly,
- a synthetic corpus with grammar (so masked-LM and distillation have something to learn).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SUBJECTS = [
    "mtoto",
    "mwalimu",
    "daktari",
    "mkulima",
    "rafiki",
    "mama",
    "baba",
    "dada",
    "kaka",
    "mgeni",
    "mwanafunzi",
    "mpishi",
    "dereva",
    "askari",
    "mfanyabiashara",
    "bibi",
]
VERBS = [
    "anasoma",
    "anaandika",
    "anapika",
    "analima",
    "anaona",
    "ananunua",
    "anauza",
    "anapenda",
    "anasafisha",
    "anabeba",
    "anatafuta",
    "anajenga",
]
OBJECTS = [
    "kitabu",
    "barua",
    "chakula",
    "shamba",
    "nyumba",
    "gari",
    "samaki",
    "matunda",
    "maji",
    "kalamu",
    "mkate",
    "kiti",
    "meza",
    "dawa",
    "nguo",
    "viatu",
]
PLACES = ["sokoni", "shuleni", "nyumbani", "hospitalini", "mjini", "kijijini", "ofisini", "kanisani"]
TIMES = ["leo", "jana", "kesho", "asubuhi", "jioni", "usiku", "mchana"]
ADJ = ["mzuri", "mkubwa", "mdogo", "mpya", "safi", "ghali", "rahisi", "kitamu"]
ACCENTED = ["čaj", "življenje", "été", "crème", "naïve", "שלום", "नमस्ते", "señor"]


def synthetic_sentences(n: int, seed: int = 0) -> list[str]:
    """Deterministic sentences with a learnable structure and a Zipf-like word distribution."""
    rng = random.Random(seed)

    def zipf(words):
        weights = [1.0 / (i + 1) for i in range(len(words))]
        return rng.choices(words, weights)[0]

    out = []
    for i in range(n):
        s, v, o = zipf(SUBJECTS), zipf(VERBS), zipf(OBJECTS)
        form = i % 4
        if form == 0:
            sent = f"{s.capitalize()} {v} {o} {zipf(ADJ)} {zipf(PLACES)} {zipf(TIMES)}."
        elif form == 1:
            sent = f"{zipf(TIMES).capitalize()} {s} {v} {o} {zipf(PLACES)}."
        elif form == 2:
            sent = f"{s.capitalize()} {v} {o} na {zipf(OBJECTS)} {zipf(ADJ)}."
        else:
            sent = f"{s.capitalize()} wa {zipf(PLACES)} {v} {o} {zipf(TIMES)}, {zipf(ACCENTED)}!"
        out.append(sent)
    return out


def write_corpus(path: Path, n: int = 400, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(synthetic_sentences(n, seed)) + "\n", encoding="utf-8")
    return path


def build_tiny_bert(
    out_dir: Path,
    hidden: int = 32,
    layers: int = 4,
    heads: int = 2,
    vocab_size: int = 300,
    with_mlm_head: bool = True,
    seed: int = 0,
    max_positions: int = 130,
    model_max_length: int = 128,
) -> Path:
    """A tiny BertForMaskedLM (or BertModel only) with a WordPiece tokenizer of the synthetic corpus.

    ``max_positions`` (the position embeddings) and the tokenizer's ``model_max_length``: the longest input the
    model takes is the smaller of the two (``eliquare.models.length_limit``)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForMaskedLM, BertModel, BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # a WordPiece vocabulary trained once on synthetic_sentences(2000, seed=123) and kept in a file: the trainer
    # breaks ties between pieces of equal count in hash order, which differs between processes, so training it here
    # gave every test session another model (and a flaky test)
    vocab = (Path(__file__).with_name("tiny_wordpiece_vocab.txt")).read_text(encoding="utf-8").split("\n")
    vocab = [t for t in vocab if t][:vocab_size]
    assert vocab[: len(specials)] == specials
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    fast = BertTokenizerFast(
        tokenizer_object=tok,
        do_lower_case=True,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
    )
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(fast),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=max_positions,
        pad_token_id=fast.pad_token_id,
    )
    model = BertForMaskedLM(config) if with_mlm_head else BertModel(config, add_pooling_layer=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    return out_dir


def build_tiny_xlmr(
    out_dir: Path,
    hidden: int = 32,
    layers: int = 4,
    heads: int = 2,
    with_mlm_head: bool = True,
    seed: int = 0,
    max_positions: int = 132,
    model_max_length: int = 128,
) -> Path:
    """A tiny XLMRobertaForMaskedLM with a unigram (SentencePiece-style) tokenizer of the synthetic corpus.

    Its longest input: ``max_positions - 2`` (positions start after the padding index) or the tokenizer's
    ``model_max_length``, whichever is smaller."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM, XLMRobertaModel, XLMRobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    # a unigram vocabulary trained once (UnigramTrainer, vocab_size 300, on synthetic_sentences(2000, seed=123)) and
    # kept in a file: training differs between processes (see build_tiny_bert)
    pieces = json.loads(Path(__file__).with_name("tiny_unigram_vocab.json").read_text(encoding="utf-8"))
    assert [p for p, _ in pieces[: len(specials)]] == specials
    tok = Tokenizer(models.Unigram([tuple(p) for p in pieces], unk_id=specials.index("<unk>")))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(r"\s+", " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.add_special_tokens(["<mask>"])
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    fast = XLMRobertaTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=model_max_length,
    )
    torch.manual_seed(seed)
    config = XLMRobertaConfig(
        vocab_size=len(fast),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=max_positions,
        pad_token_id=fast.pad_token_id,
        bos_token_id=bos,
        eos_token_id=eos,
        type_vocab_size=1,
    )
    model = XLMRobertaForMaskedLM(config) if with_mlm_head else XLMRobertaModel(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    return out_dir


def build_tiny_roberta(
    out_dir: Path,
    hidden: int = 32,
    layers: int = 4,
    heads: int = 2,
    vocab_size: int = 400,
    with_mlm_head: bool = True,
    seed: int = 0,
) -> Path:
    """A tiny RobertaForMaskedLM with a byte-level BPE tokenizer (GPT-2 style) trained on the synthetic corpus."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import RobertaConfig, RobertaForMaskedLM, RobertaModel, RobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(synthetic_sentences(2000, seed=123), trainer=trainer)
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>"))
    )
    fast = RobertaTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=128,
    )
    torch.manual_seed(seed)
    config = RobertaConfig(
        vocab_size=len(fast),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=132,
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        type_vocab_size=1,
    )
    model = RobertaForMaskedLM(config) if with_mlm_head else RobertaModel(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    return out_dir
