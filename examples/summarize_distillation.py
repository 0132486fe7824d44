"""Summarise a finished `eliquare distill` run: sizes, validation losses, speed, and a reload check.

.venv/bin/python examples/summarize_distillation.py runs/real/sw-student
"""

import json
import sys
from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer


def main(out: str) -> None:
    out = Path(out)
    record = json.loads((out / "distillation.json").read_text())
    print(
        f"teacher {record['teacher']}: {record['teacher_parameters']:,} parameters "
        f"({record['teacher_layers']} layers){' after VocabReduce' if record.get('vocab_reduce') else ''}"
    )
    print(f"student: {record['student_parameters']:,} parameters, teacher layers {record['teacher_layers_used']}")
    if record.get("vocab_reduce"):
        v = record["vocab_reduce"]
        print("vocab reduce:", {k: v[k] for k in v if "vocab" in k or "param" in k})
    print(f"loss weights {record['loss_weights']}, temperature {record['temperature']}")
    print("validation distillation loss per evaluation:")
    for e in record["validation"]:
        terms = "  ".join(f"{k[5:]}={v:.4f}" for k, v in e.items() if k.startswith("eval_") and k != "eval_loss")
        print(f"  step {e['step']:>5}  epoch {e.get('epoch', 0):.3f}  loss {e['eval_loss']:.4f}  {terms}")
    m = record.get("train_metrics", {})
    print(
        f"steps {record['steps']}, tokens seen {record['tokens_seen']:,}, "
        f"training {m.get('train_runtime', float('nan')):.0f} s, "
        f"{m.get('train_tokens_per_second', float('nan')):.0f} tokens/s (evaluations included), "
        f"whole run {record['wall_seconds']:.0f} s"
    )
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForMaskedLM.from_pretrained(out).eval()
    sentence = f"Rais wa Kenya alihutubia {tokenizer.mask_token} jana jioni."
    with torch.no_grad():
        enc = tokenizer(sentence, return_tensors="pt")
        logits = model(**enc).logits
    position = (enc["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0, 0]
    top = logits[0, position].topk(5).indices.tolist()
    print(
        f"reloaded with AutoModelForMaskedLM/AutoTokenizer ({type(model).__name__}, vocabulary {len(tokenizer):,}); "
        f"top-5 for '{sentence}': {tokenizer.convert_ids_to_tokens(top)}"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/sw-student")
