"""eliquare export: ONNX fp32/int8 of tiny models, parity with PyTorch, the tied decoder stored once."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification  # noqa: E402

from eliquare.cli import main  # noqa: E402
from eliquare.config import ExportConfig  # noqa: E402
from eliquare.export import export  # noqa: E402


def test_masked_lm_export_matches_pytorch_and_stores_the_tied_decoder_once(tiny_bert, tmp_path):
    import onnx

    out = tmp_path / "onnx"
    record = export(ExportConfig(model=str(tiny_bert), out=str(out)))
    assert record["head"] == "masked-lm" and record["output"] == "logits"
    assert record["parity"]["max_abs_difference"]["onnx-fp32"] < 1e-4
    assert record["shared_weight_bytes"] > 0  # the decoder's transposed copy of the word embeddings
    g = onnx.load(str(out / "model.onnx"))
    shapes = sorted(tuple(i.dims) for i in g.graph.initializer if len(i.dims) == 2)
    vocab, hidden = 300, 32
    assert shapes.count((hidden, vocab)) == 0 and shapes.count((vocab, hidden)) == 1
    names = sorted(os.listdir(out))
    assert names == [
        "config.json",
        "export.json",
        "model.int8.onnx",
        "model.onnx",
        "tokenizer.json",
        "tokenizer_config.json",
    ] or set(names) >= {"model.onnx", "model.int8.onnx", "export.json"}
    assert all(os.stat(out / n).st_mode & 0o777 == 0o644 for n in names)
    assert json.loads((out / "export.json").read_text())["files"]["int8"]["name"] == "model.int8.onnx"


def test_encoder_alone(tiny_bert, tmp_path):
    record = export(ExportConfig(model=str(tiny_bert), out=str(tmp_path / "enc"), head="base", int8=False))
    assert record["output"] == "last_hidden_state" and "int8" not in record["files"]
    assert record["parity"]["max_abs_difference"]["onnx-fp32"] < 1e-4


def _bio_file(path, n=40):
    words = ["Juma", "alienda", "Nairobi", "jana", "na", "Amina"]
    tags = ["B-PER", "O", "B-LOC", "O", "O", "B-PER"]
    lines = []
    for i in range(n):
        k = 2 + i % 4
        lines += [f"{w} {t}" for w, t in zip(words[:k], tags[:k])] + [""]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_token_classifier_scores_the_same_with_onnx(tiny_bert, tmp_path):
    labels = ["O", "B-LOC", "B-PER"]
    model = AutoModelForTokenClassification.from_pretrained(
        tiny_bert, num_labels=3, id2label=dict(enumerate(labels)), label2id={k: i for i, k in enumerate(labels)}
    )
    model.save_pretrained(tmp_path / "ner")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "ner" / name).write_bytes((tiny_bert / name).read_bytes())
    dev = _bio_file(tmp_path / "dev.txt")
    record = export(
        ExportConfig(model=str(tmp_path / "ner"), out=str(tmp_path / "onnx"), task_file=str(dev), task="ner")
    )
    assert record["head"] == "token-classification"
    scores = record["task"]["scores"]
    assert scores["pytorch"] == scores["onnx-fp32"] and set(scores) == {"pytorch", "onnx-fp32", "onnx-int8"}
    assert record["task"]["examples"] == 40


def test_sequence_classifier(tiny_bert, tmp_path):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    model.save_pretrained(tmp_path / "cls")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "cls" / name).write_bytes((tiny_bert / name).read_bytes())
    record = export(ExportConfig(model=str(tmp_path / "cls"), out=str(tmp_path / "onnx"), int8=False))
    assert record["head"] == "sequence-classification"
    assert record["parity"]["max_abs_difference"]["onnx-fp32"] < 1e-4
    # its dev file's score, the columns named as finetune takes them (the label column is not called "label")
    dev = tmp_path / "dev.tsv"
    dev.write_text(
        "topic\ttitle\tbody\n"
        + "".join(f"{'LABEL_0' if i % 2 else 'LABEL_1'}\tJuma {i}\talienda Nairobi\n" for i in range(20)),
        encoding="utf-8",
    )
    record = export(
        ExportConfig(
            model=str(tmp_path / "cls"),
            out=str(tmp_path / "onnx2"),
            int8=False,
            task_file=str(dev),
            task="classify",
            label_column="topic",
            text_column=["title"],
        )
    )
    assert (
        record["task"]["examples"] == 20
        and record["task"]["scores"]["pytorch"] == record["task"]["scores"]["onnx-fp32"]
    )


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--task-file", "missing.txt", "--task", "ner"], "--task-file missing.txt is not a file"),
        (["--head", "token-classification"], "was saved as masked-lm"),
    ],
)
def test_bad_input_gets_one_line_and_writes_nothing(extra, message, tiny_bert, tmp_path, capsys):
    out = tmp_path / "onnx"
    code = main(["export", "--model", str(tiny_bert), "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_share_transposed_weights_keeps_the_graph_valid():
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    w = np.arange(64 * 80, dtype=np.float32).reshape(64, 80) / 100
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 80])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 64])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "wt"], ["y"])],
        "g",
        [x],
        [y],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(w.T.copy(), "wt")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    from eliquare.export import share_transposed_weights

    assert share_transposed_weights(proto) == w.nbytes
    onnx.checker.check_model(proto)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    xs = np.ones((2, 80), dtype=np.float32)
    np.testing.assert_allclose(session.run(None, {"x": xs})[0], xs @ w.T, rtol=1e-5)


def test_int8_scales_per_output_channel_unless_told(tiny_bert, tmp_path):
    import onnx

    def scale_sizes(out):
        g = onnx.load(str(out / "model.int8.onnx"))
        return {
            int(np.prod(i.dims)) for i in g.graph.initializer if i.name.endswith("_scale") and "MatMul" in i.name
        }  # the weight matrices' scales

    per_channel = export(ExportConfig(model=str(tiny_bert), out=str(tmp_path / "pc"), head="base"))
    assert per_channel["int8_per_channel"] is True and max(scale_sizes(tmp_path / "pc")) > 1
    export(ExportConfig(model=str(tiny_bert), out=str(tmp_path / "pt"), head="base", int8_per_channel=False))
    assert scale_sizes(tmp_path / "pt") == {1}
