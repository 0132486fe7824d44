"""Fingerprints of what produced a result: a model is its files' contents (not their times), and an option added to
eliquare after a stage ran does not count as a changed setting while it is at its default."""

from __future__ import annotations

import json
import os
import shutil

from eliquare.config import FinetuneConfig, option_defaults, to_dict
from eliquare.fingerprint import FILE, digest, matches, model_fingerprint, record, stage_fingerprint


def test_a_model_is_its_contents_not_its_file_times(tiny_bert, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bert, copy)
    weights = next(copy.glob("*.safetensors"))
    os.utime(weights, (1, 1))  # another time, the same bytes (copied, converted again)
    (copy / "README.md").write_text("a model card\n", encoding="utf-8")  # not the model
    (copy / "training_args.bin").write_bytes(b"pickle")
    assert model_fingerprint(str(copy)) == model_fingerprint(str(tiny_bert))

    tok = copy / "tokenizer_config.json"
    cfg = json.loads(tok.read_text(encoding="utf-8"))
    tok.write_text(json.dumps({**cfg, "tokenizer_class": "PreTrainedTokenizerFast"}), encoding="utf-8")
    assert model_fingerprint(str(copy)) == model_fingerprint(str(tiny_bert))  # the loader's name, not the model
    tok.write_text(json.dumps({**cfg, "do_lower_case": not cfg.get("do_lower_case", False)}), encoding="utf-8")
    assert model_fingerprint(str(copy)) != model_fingerprint(str(tiny_bert))  # how it tokenises: another model
    tok.write_text(json.dumps(cfg), encoding="utf-8")

    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert model_fingerprint(str(copy)) != model_fingerprint(str(tiny_bert))


def _options(**changes) -> dict:
    cfg = FinetuneConfig(model="m", task="pos", train="t.conllu", out="o", **changes)
    return {k: v for k, v in to_dict(cfg).items() if k not in ("out", "model", "train")}


def test_an_option_added_since_at_its_default_is_the_same_setting(tmp_path):
    now = stage_fingerprint(finetune=_options(), model="m1", data="d1")
    old_parts = {
        **now["parts"],
        "finetune": {k: v for k, v in now["parts"]["finetune"].items() if k not in ("query_column", "query_prompt")},
    }
    # what an eliquare without those two options recorded
    (tmp_path / FILE).write_text(json.dumps({"fingerprint": digest(old_parts), "parts": old_parts}), encoding="utf-8")
    assert option_defaults(FinetuneConfig, now["parts"]["finetune"])["query_prompt"] == "query"
    configs = {"finetune": FinetuneConfig}
    assert matches(tmp_path, now, configs)

    # given another value now, the old run (which had the default behaviour) is not this one
    other = stage_fingerprint(finetune=_options(query_prompt="passage"), model="m1", data="d1")
    assert not matches(tmp_path, other, configs)
    # an option the record has, changed: not the same; nor another model or data
    changed = stage_fingerprint(finetune=_options(epochs=7), model="m1", data="d1")
    assert not matches(tmp_path, changed, configs)
    assert not matches(tmp_path, stage_fingerprint(finetune=_options(), model="m2", data="d1"), configs)

    record(tmp_path, now)
    assert matches(tmp_path, now, {})
    (tmp_path / FILE).write_text("{not json", encoding="utf-8")
    assert not matches(tmp_path, now, configs)
