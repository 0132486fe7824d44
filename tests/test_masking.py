import numpy as np
import torch

from eliquare.distill.masking import IGNORE_INDEX, MaskingCollator, smoothed_token_weights

PAD, MASK, CLS, SEP = 0, 1, 2, 3
VOCAB = 50


def _collator(counts, smoothing=0.7):
    weights = smoothed_token_weights(counts, smoothing, [PAD, MASK, CLS, SEP])
    return MaskingCollator(PAD, MASK, weights, 0.15, 0.8, 0.1)


def _examples(n, rng):
    out = []
    for _ in range(n):
        length = int(rng.integers(5, 40))
        out.append({"input_ids": [CLS] + rng.integers(4, VOCAB, length).tolist() + [SEP]})
    return out


def test_masking_rates_and_specials():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    collator = _collator(np.ones(VOCAB), smoothing=0.0)
    chosen = masked = randomised = kept = maskable = 0
    for _ in range(60):
        examples = _examples(32, rng)
        batch = collator(examples)
        original, _ = collator.pad(examples)
        labels, ids = batch["labels"], batch["input_ids"]
        special = (original == PAD) | (original == CLS) | (original == SEP)
        assert (labels[special] == IGNORE_INDEX).all()  # special tokens and padding are never chosen
        assert (ids[special] == original[special]).all()
        sel = labels != IGNORE_INDEX
        assert (labels[sel] == original[sel]).all()
        maskable += int((~special).sum())
        chosen += int(sel.sum())
        masked += int((ids[sel] == MASK).sum())
        kept += int((ids[sel] == original[sel]).sum())
        randomised += int(((ids[sel] != MASK) & (ids[sel] != original[sel])).sum())
        assert ((ids[sel] >= 4) | (ids[sel] == MASK)).all()  # random replacements are ordinary tokens
    assert abs(chosen / maskable - 0.15) < 0.005
    assert abs(masked / chosen - 0.8) < 0.02
    # a random draw may hit the original token (1 in 46): it then counts as kept
    assert abs(randomised / chosen - 0.1 * 45 / 46) < 0.015
    assert abs(kept / chosen - (0.1 + 0.1 / 46)) < 0.015


def test_smoothing_shifts_masks_to_rare_tokens():
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    counts = np.ones(VOCAB)
    counts[4] = 10_000  # token 4 is very frequent in the corpus
    ids = []
    for _ in range(32):
        seq = [CLS] + [4] * 10 + rng.integers(5, VOCAB, 10).tolist() + [SEP]  # half of each sentence is token 4
        ids.append({"input_ids": seq})

    def share_of_frequent(smoothing):
        torch.manual_seed(0)
        collator = _collator(counts, smoothing)
        hits = total = 0
        for i in range(30):
            collator.seed = i  # masks are seeded by content and run seed: vary the seed to sample anew
            batch = collator(ids)
            original, _ = collator.pad(ids)
            sel = batch["labels"] != IGNORE_INDEX
            hits += int((original[sel] == 4).sum())
            total += int(sel.sum())
        return hits / total

    uniform, smoothed = share_of_frequent(0.0), share_of_frequent(0.7)
    assert abs(uniform - 0.5) < 0.05
    assert smoothed < 0.05  # 10000 ** -0.7 ~ 1.6e-3 of the weight of a rare token


def test_padding_is_dynamic():
    collator = _collator(np.ones(VOCAB))
    batch = collator([{"input_ids": [CLS, 5, 6, SEP]}, {"input_ids": [CLS, 5, SEP]}])
    assert batch["input_ids"].shape == (2, 4)
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]


def test_masks_depend_only_on_content_and_seed():
    collator = _collator(np.ones(VOCAB))
    examples = [{"input_ids": [CLS] + list(range(4, 44)) + [SEP]}]
    a, b = collator(examples), collator(examples)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    collator.seed = 1
    c = collator(examples)
    assert not torch.equal(a["labels"], c["labels"])
