"""BERT and the RoBERTa line (XLM-R, CamemBERT, multilingual-e5): the architectures of the paper.

``bert.embeddings`` (word, learned absolute position and token-type embeddings), ``bert.encoder.layer[i]`` (the
layers, nothing shared between them), ``cls`` / ``lm_head`` (the MLM head, its decoder tied to the word
embeddings); ``attention.self.query``, ``key`` and ``value`` are each layer's query, key and value
projections. Vocabularies: WordPiece (BERT, mBERT),
SentencePiece unigram (XLM-R, e5), byte-level BPE (RoBERTa).
"""

from __future__ import annotations

from eliquare.architectures import Architecture

ARCHITECTURES = {
    "bert": Architecture(encoder="bert", head="cls"),
    "roberta": Architecture(encoder="roberta", head="lm_head", tokenizer_family="BPE"),
    "xlm-roberta": Architecture(encoder="roberta", head="lm_head", tokenizer_family="Unigram"),
    "camembert": Architecture(encoder="roberta", head="lm_head", tokenizer_family="Unigram"),
}
