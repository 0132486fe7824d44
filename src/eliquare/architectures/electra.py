"""ELECTRA: BERT's encoder, trained as a discriminator (replaced-token detection) beside a small generator.

Where its parts live in an ``ElectraForMaskedLM``:

- ``electra.embeddings`` (word, position and token-type embeddings of ``embedding_size``) and, where
  ``embedding_size`` differs from ``hidden_size``, ``electra.embeddings_project`` (kept by the student);
- ``electra.encoder.layer[i]`` (BERT's layers, nothing shared between them);
- the MLM head is the generator's: ``generator_predictions`` (dense to ``embedding_size``, activation, LayerNorm)
  then ``generator_lm_head`` (tied to the word embeddings);
- each layer's query, key and value projections are ``attention.self.query``, ``key`` and ``value``.

A discriminator checkpoint (``ElectraForPreTraining``, e.g. an ELECTRA-base discriminator) has no masked-LM head:
loaded as ``ElectraForMaskedLM`` its generator head is new, so the teacher counts as one without a trained MLM head
(the soft-target term is off and the student's head is trained by the MLM term). A generator checkpoint has the
head. Vocabulary: WordPiece.
"""

from __future__ import annotations

from eliquare.architectures import Architecture

ARCHITECTURES = {
    "electra": Architecture(encoder="electra", head=("generator_predictions", "generator_lm_head")),
}
