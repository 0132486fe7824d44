"""DistilBERT (distilbert-base-multilingual-cased): BERT's layers under other names, no token types.

Where its parts live in a ``DistilBertForMaskedLM``:

- ``distilbert.embeddings`` (word and learned absolute position embeddings, a LayerNorm; no token types);
- ``distilbert.transformer.layer[i]`` (the layers, nothing shared between them);
- the MLM head is four attributes of the model itself, applied in order: ``vocab_transform``, ``activation``,
  ``vocab_layer_norm``, ``vocab_projector`` (tied to the word embeddings);
- each layer's query, key and value projections are ``attention.q_lin``, ``k_lin`` and ``v_lin``.

``config.num_hidden_layers`` is an alias of ``n_layers``. Vocabulary: WordPiece (mBERT's).
"""

from __future__ import annotations

from eliquare.architectures import Architecture

ARCHITECTURES = {
    "distilbert": Architecture(
        encoder="distilbert",
        head=("vocab_transform", "activation", "vocab_layer_norm", "vocab_projector"),
        layers="transformer.layer",
        value="attention.v_lin",
        query="attention.q_lin",
        key="attention.k_lin",
    ),
}
