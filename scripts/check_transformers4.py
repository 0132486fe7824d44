"""Load model directories with AutoTokenizer / AutoModel* on whatever transformers this Python has, and print
the token ids and a hash of the outputs of a few sentences as JSON (tests/test_transformers4.py compares the
lines). Usage: python scripts/check_transformers4.py DIR [DIR ...]"""

import json
import sys

import torch
import transformers
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoTokenizer

TEXTS = ["Habari ya asubuhi,  rafiki yangu! ", "Ljubljana je glavno mesto Slovenije.", "ＡＢＣ café <mask> x"]

result = {"transformers": transformers.__version__}
for directory in sys.argv[1:]:
    tok = AutoTokenizer.from_pretrained(directory)
    config = AutoConfig.from_pretrained(directory)
    auto = AutoModelForMaskedLM if any(a.endswith("ForMaskedLM") for a in config.architectures or []) else AutoModel
    model = auto.from_pretrained(directory).eval()
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc)
    tensor = out.logits if hasattr(out, "logits") else out.last_hidden_state
    result[directory] = {
        "class": type(tok).__name__,
        "model": type(model).__name__,
        "ids": [tok(t)["input_ids"] for t in TEXTS],
        "output_sum": float(tensor[enc["attention_mask"].bool()].abs().sum()),
    }
print(json.dumps(result))
