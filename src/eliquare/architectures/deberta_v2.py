"""DeBERTa-v2/v3 (mDeBERTa-v3): disentangled attention over relative positions shared by all layers.

Where its parts live in a ``DebertaV2ForMaskedLM``:

- ``deberta.embeddings`` (word embeddings and a LayerNorm; mDeBERTa-v3 has no absolute position embeddings,
  ``position_biased_input`` false, and no token types, ``type_vocab_size`` 0);
- ``deberta.encoder.layer[i]`` (the layers), and beside them, shared by every layer: ``encoder.rel_embeddings``
  (the relative-position embeddings) and ``encoder.LayerNorm`` (their norm, ``norm_rel_ebd``). These are not in
  any layer, so a student copies them as they are, with the embeddings: each copied layer reads the same relative
  positions it was trained with (and ``encoder.conv``, DeBERTa-v2-xlarge's convolution after the first layer, where
  there is one);
- the MLM head is ``cls`` (``legacy`` true, the configuration's default): ``cls.predictions`` (transform, decoder
  tied to the word embeddings, bias). mDeBERTa-v3's released checkpoint does not fill it, so that teacher counts
  as one without a trained MLM head: the soft-target term is off and the student's head is trained by the MLM term;
- each layer's query, key and value projections are ``attention.self.query_proj``, ``key_proj`` and ``value_proj``
  (with ``share_att_key``, the query and key projections also project the relative-position embeddings, after the
  tokens: the relation term takes each one's first output of a forward pass).

Vocabulary: a SentencePiece unigram model (``spm.model``), the Unigram family of eliquare.vocab.
"""

from __future__ import annotations

from eliquare.architectures import Architecture
from eliquare.errors import EliquareError


def check_config(config) -> None:
    if getattr(config, "legacy", True) is False:
        raise EliquareError(
            "a DeBERTa-v2 masked-LM with legacy: false (the lm_predictions head, which takes the word "
            "embeddings at call time) is not supported; load the teacher with legacy: true, the "
            "configuration's default (its head is then counted as untrained)"
        )


ARCHITECTURES = {
    "deberta-v2": Architecture(
        encoder="deberta",
        head="cls",
        value="attention.self.value_proj",
        query="attention.self.query_proj",
        key="attention.self.key_proj",
        tokenizer_family="Unigram",
        check_config=check_config,
    ),
}
