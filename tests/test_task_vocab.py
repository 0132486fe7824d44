"""Fine-tuning on the task's own vocabulary is exact: same tokens, same hidden states, same training."""

from __future__ import annotations

import pytest
import tiny
import torch

from eliquare.evaluate.task_vocab import TaskVocabulary


def _features(tokenizer, sentences):
    enc = tokenizer(sentences, truncation=True, max_length=32)
    return [
        {"input_ids": ids, "attention_mask": mask, "labels": [i % 3 for i in range(len(ids))]}
        for ids, mask in zip(enc["input_ids"], enc["attention_mask"])
    ]


def _batch(features):
    width = max(len(f["input_ids"]) for f in features)
    pad = lambda xs, v: [x + [v] * (width - len(x)) for x in xs]  # noqa: E731
    return {
        "input_ids": torch.tensor(pad([f["input_ids"] for f in features], 0)),
        "attention_mask": torch.tensor(pad([f["attention_mask"] for f in features], 0)),
        "labels": torch.tensor(pad([f["labels"] for f in features], -100)),
    }


@pytest.mark.parametrize("family", ["bert", "xlmr"])
def test_same_hidden_states_and_same_training(family, tiny_bert, tiny_xlmr):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    path = tiny_bert if family == "bert" else tiny_xlmr
    tokenizer = AutoTokenizer.from_pretrained(path)
    sentences = tiny.synthetic_sentences(60, seed=3)
    features = _features(tokenizer, sentences)

    def fresh():
        torch.manual_seed(0)
        return AutoModelForTokenClassification.from_pretrained(path, num_labels=3).eval()

    full, small = fresh(), fresh()
    vocab = TaskVocabulary.of(features, tokenizer, full.get_input_embeddings().weight.shape[0])
    sizes = vocab.shrink(small)
    assert sizes["vocab_size"]["after"] < sizes["vocab_size"]["before"]
    assert sizes["parameters"]["after"] < sizes["parameters"]["before"]
    remapped = vocab.remap(features)
    # the same tokens: renumbering is one-to-one on what the task uses
    assert all(vocab.kept_ids[r["input_ids"]].tolist() == f["input_ids"] for r, f in zip(remapped, features))
    pad = tokenizer.pad_token_id
    assert vocab.lookup[pad] == pad  # the pad id stays where RoBERTa's position ids expect it

    # the same hidden states on every sentence
    batch_full, batch_small = _batch(features), _batch(remapped)
    batch_small["input_ids"][batch_full["attention_mask"] == 0] = int(vocab.lookup[0])
    with torch.no_grad():
        h_full = full.base_model(input_ids=batch_full["input_ids"], attention_mask=batch_full["attention_mask"])[0]
        h_small = small.base_model(input_ids=batch_small["input_ids"], attention_mask=batch_small["attention_mask"])[0]
    keep = batch_full["attention_mask"].bool()
    assert (h_full[keep] - h_small[keep]).abs().max().item() <= 1e-5

    # the same training: AdamW with weight decay and clipping, 5 steps on both
    def train(model, batch):
        model.train()
        torch.manual_seed(1)  # the same dropout masks
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        for _ in range(5):
            loss = model(**batch).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        model.eval()
        with torch.no_grad():
            return model(**batch).logits

    logits_full, logits_small = train(full, batch_full), train(small, batch_small)
    assert (logits_full[keep] - logits_small[keep]).abs().max().item() <= 1e-4
    # and the trained rows go back into the full matrix: the model reads its own tokenizer's ids again
    vocab.expand(small)
    assert small.get_input_embeddings().weight.shape == full.get_input_embeddings().weight.shape
    assert small.config.vocab_size == full.config.vocab_size and small.config.pad_token_id == pad
    with torch.no_grad():
        again = small(input_ids=batch_full["input_ids"], attention_mask=batch_full["attention_mask"]).logits
    assert (again[keep] - logits_full[keep]).abs().max().item() <= 1e-4
