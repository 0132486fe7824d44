"""Labelled task data shared by the stages: readers of CoNLL-U, BIO and table files (``readers``) and their
encoding into model features (``encoding``). Evaluation fine-tunes on it; distillation's health probe reads it."""
