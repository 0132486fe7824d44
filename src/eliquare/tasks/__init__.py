"""Labelled task data shared by the stages: what fine-tuning trains and scores on, and what distillation's health
probe reads.

- ``files``: the examples, a task's three splits, file checks and decoding;
- ``tokens``: CoNLL-U and token-per-line BIO files (POS, NER); ``tables``: TSV/CSV/JSONL/JSON (classification);
- ``readers``: any of these into train/dev/test, documents, label inventories (``load_task_data``);
- ``encoding``: examples into model features (labels on first sub-words, windows of whole words).
"""
