"""Task examples as model features: labels on the first sub-word of each word (token tasks), sentences longer
than the model's limit cut into windows of whole words, texts truncated (classification).

Shared by fine-tuning (``eliquare.evaluate.finetune``), export's checks and the distillation health probe."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from eliquare.errors import EliquareError


@contextlib.contextmanager
def quiet_transformers():
    """transformers' warnings silenced for the block (tokenising long texts, loading with new heads)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def _windows(counts: list[int], budget: int, stats: dict) -> list[list[int]]:
    """Word indices split, in order, into windows of at most ``budget`` sub-words; a word longer than the
    budget gets a window of its own and is counted in ``stats["cut_words"]`` (truncation cuts it)."""
    windows: list[list[int]] = []
    cur: list[int] = []
    cur_len = 0
    for w, c in enumerate(counts):
        c = min(c, budget)
        if c == budget and counts[w] > budget:
            stats["cut_words"] += 1
        if cur and cur_len + c > budget:
            windows.append(cur)
            cur, cur_len = [], 0
        cur.append(w)
        cur_len += c
    windows.append(cur)
    return windows


def _label_windows(pending: list[tuple[int, list[str], list[str]]], tokenizer, label2id: dict, max_length: int):
    """Features for ``(example index, words, tags)`` windows, labels on first sub-words; returns
    ``(features, owners)``. A window whose words tokenise to fewer labelled positions than it has words (the
    tokenizer counts sub-words differently in context) is halved and tried again, so that no word goes unlabelled."""
    features, owners = [], []
    while pending:
        enc = tokenizer([p[1] for p in pending], is_split_into_words=True, truncation=True, max_length=max_length)
        retry = []
        for j, (i, ws, ts) in enumerate(pending):
            labels, prev = [], None
            for w in enc.word_ids(j):
                labels.append(-100 if w is None or w == prev else label2id[ts[w]])
                prev = w
            if sum(lab != -100 for lab in labels) < len(ws):
                half = len(ws) // 2
                retry += [(i, ws[:half], ts[:half]), (i, ws[half:], ts[half:])]
                continue
            feat = {"input_ids": enc["input_ids"][j], "attention_mask": enc["attention_mask"][j], "labels": labels}
            if "token_type_ids" in enc:
                feat["token_type_ids"] = enc["token_type_ids"][j]
            features.append(feat)
            owners.append(i)
        pending = retry
    return features, owners


def encode_token_examples(examples: Sequence, tokenizer, label2id: dict, max_length: int):
    """Sub-word features for token tasks: labels on first sub-words, sentences windowed to fit.

    Returns ``(features, owners, stats)``: ``owners[j]`` is the example index of feature ``j``.
    """
    n_special = tokenizer.num_special_tokens_to_add(pair=False)
    budget = max_length - n_special
    if budget < 1:
        raise EliquareError(f"max_length {max_length} leaves no room for words; give a larger --max-length")
    unk = tokenizer.unk_token or "[UNK]"
    words_all = [list(e.words) for e in examples]
    stats = {"windowed": 0, "windows": 0, "empty_words": 0, "cut_words": 0}
    pending: list[tuple[int, list[str], list[str]]] = []
    enc = tokenizer(words_all, is_split_into_words=True, add_special_tokens=False) if words_all else None
    for i, ex in enumerate(examples):
        words, tags = words_all[i], list(ex.tags)
        counts = [0] * len(words)
        assert enc is not None  # there are examples, so they were tokenised
        for w in enc.word_ids(i):
            if w is not None:
                counts[w] += 1
        if 0 in counts:  # e.g. a lone zero-width character: give it a token so that it is labelled
            for w, c in enumerate(counts):
                if c == 0:
                    words[w] = unk
                    counts[w] = 1
                    stats["empty_words"] += 1
        windows = _windows(counts, budget, stats)
        if len(windows) > 1:
            stats["windowed"] += 1
        for win in windows:
            pending.append((i, [words[w] for w in win], [tags[w] for w in win]))

    features, owners = _label_windows(pending, tokenizer, label2id, max_length)
    order = sorted(range(len(features)), key=lambda j: owners[j])  # stable: windows stay in order
    features = [features[j] for j in order]
    owners = [owners[j] for j in order]
    stats["windows"] = len(features)
    return features, owners, stats


def encode_text_examples(examples: Sequence, tokenizer, label2id: dict, max_length: int):
    texts = [e.text for e in examples]
    with quiet_transformers():
        full = tokenizer(texts, add_special_tokens=True)["input_ids"] if texts else []
    truncated = sum(len(ids) > max_length for ids in full)
    enc = tokenizer(texts, truncation=True, max_length=max_length) if texts else {"input_ids": []}
    features = []
    for j, e in enumerate(examples):
        feat = {
            "input_ids": enc["input_ids"][j],
            "attention_mask": enc["attention_mask"][j],
            "labels": label2id[e.label],
        }
        if "token_type_ids" in enc:
            feat["token_type_ids"] = enc["token_type_ids"][j]
        features.append(feat)
    return features, list(range(len(examples))), {"truncated": truncated}


def encode(task: str, examples, tokenizer, label2id, max_length):
    if task == "classify":
        return encode_text_examples(examples, tokenizer, label2id, max_length)
    return encode_token_examples(examples, tokenizer, label2id, max_length)
