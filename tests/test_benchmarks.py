"""The benchmark scripts run end to end on a tiny shape (no timing assertions: timings live in BENCHMARKS.md)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _common as C  # noqa: E402
import distill_throughput  # noqa: E402
import inference  # noqa: E402
import memory  # noqa: E402

TINY = C.SHAPES["tiny"]


def data_lines(table: str) -> list[str]:
    return table.splitlines()[2:]


def test_distill_throughput_rows(capsys):
    rows, peak = distill_throughput.measure(TINY, batch_size=2, seq=16, rounds=1, warmup=0)
    assert [r["variant"] for r in rows] == ["a", "b", "c"] and peak > 0
    for r in rows:
        assert r["seconds"] > 0 and r["tokens_per_s"] > 0 and r["gflop"] > 0 and r["mfu"] > 0
    assert [r["vocab"] for r in rows] == [TINY.vocab_size, TINY.vocab_size, TINY.kept]
    assert rows[0]["speedup"] == 1.0
    assert rows[0]["gflop"] > rows[1]["gflop"] > rows[2]["gflop"]  # full projection > masked > masked, fewer rows
    lines = data_lines(distill_throughput.format_rows(rows))
    assert len(lines) == 3 and "(a) reference" in lines[0] and "(c)" in lines[2]


def test_step_flops_by_hand():
    config = TINY.config()  # h 64, ffn 128, vocab 2000
    per_token_layer = 2 * (4 * 64 * 64 + 2 * 64 * 128) + 4 * 16 * 64
    head = 2 * 64 * 64 + 2 * 64 * 2000
    tokens, masked = 32, 5
    full = distill_throughput.step_flops(config, 4, 2, tokens, masked, 16, full_vocab=True)
    assert full == tokens * 4 * per_token_layer + tokens * head + 3 * (tokens * 2 * per_token_layer + tokens * head)
    part = distill_throughput.step_flops(config, 4, 2, tokens, masked, 16, full_vocab=False)
    assert full - part == 4 * (tokens - masked) * head


def test_reference_and_eliquare_losses_agree():
    """Variant (a) computes the same objective as eliquare's step (b), only over the full vocabulary."""
    setups, _ = distill_throughput.prepare(TINY, 2, 16, "ab", "cpu")
    student, teacher, batch, _ = setups["a"]
    student.eval()  # no dropout: both must see the same network
    w, t = distill_throughput.WEIGHTS, distill_throughput.TEMPERATURE
    a = distill_throughput.reference_losses(student, teacher, batch, w, t)
    b = distill_throughput.distillation_losses(student, teacher, batch, w, t)
    for name in ("ce", "cos", "mlm"):
        assert torch.allclose(a[name], b[name], rtol=1e-4, atol=1e-5), name


def test_inference_rows():
    rows = inference.measure(TINY, rounds=1, latency_rounds=1, batch=2, seq=16)
    assert [r["model"] for r in rows] == [
        "teacher",
        "student",
        "reduced student",
        "student int8",
        "reduced student int8",
    ]
    for r in rows:
        assert r["latency_ms"] > 0 and r["tokens_per_s"] > 0 and r["bytes"] > 0 and r["parameters"] > 0
    teacher, student, reduced = rows[:3]
    assert teacher["layers"] == 4 and student["layers"] == reduced["layers"] == 2
    assert reduced["vocab"] == TINY.kept and reduced["parameters"] < student["parameters"] < teacher["parameters"]
    assert rows[3]["bytes"] < student["bytes"]  # int8 weights
    assert len(data_lines(inference.format_rows(rows))) == 5


@pytest.mark.slow
def test_memory_rows(tmp_path):
    rows = memory.measure(parts=("step", "corpus"), shapes=("tiny",), variants="b", batch=2, seq=16, max_gb=0.0005)
    assert [r["part"] for r in rows] == ["step", "corpus", "corpus", "corpus"]
    for r in rows:
        assert r["peak"] >= r["baseline"] > 0 and r["peak_anonymous"] > 0
    assert rows[0]["peak"] >= rows[0]["models"] > rows[0]["baseline"]
    sizes = [r["bytes"] for r in rows[1:]]
    assert sizes[0] < sizes[1] < sizes[2] and all(r["sentences"] > 0 for r in rows[1:])
    assert len(data_lines(memory.format_rows(rows))) == 4


def test_corpus_sizes():
    assert memory.corpus_sizes(1.0) == [0.1, 0.3, 1.0]
    assert memory.corpus_sizes(0.5) == [0.1, 0.3]
    assert memory.corpus_sizes(0.01) == pytest.approx([0.001, 0.003, 0.01])


def test_report_logs_and_rebuilds_the_index_with_the_newest_table_of_each(tmp_path):
    paths = dict(path=tmp_path / "log.md", latest=tmp_path / "latest", index=tmp_path / "BENCHMARKS.md")
    C.report("First", "| a |\n|---|\n| 1 |", **paths)
    C.report("Second", "| b |", **paths)
    C.report("First", "| a |\n|---|\n| 2 |", **paths)
    log = paths["path"].read_text()
    assert log.startswith("# Benchmarks log") and log.count("## First") == 2
    assert log.index("| 1 |") < log.index("| b |") < log.index("| 2 |")  # newest last
    index = paths["index"].read_text()
    assert index.startswith("# Benchmarks") and index.count("## First") == 1 and "| 2 |" in index
    assert "| 1 |" not in index and "## Second" in index and "- [First](#first)" in index
    assert "`.venv/bin/python" in index and "torch " in index


def test_regenerate_takes_the_newest_table_of_each_title_from_a_log(tmp_path):
    import regenerate

    log = tmp_path / "log.md"
    log.write_text("# Benchmarks log\n\n## A\n\nold\n\n## B\n\nb\n\n## A\n\nnew\n\n## Notes on A\n\nx\n")
    assert regenerate.newest_from_log(log, tmp_path / "latest") == 2
    text = C.write_index(tmp_path / "latest", tmp_path / "BENCHMARKS.md")
    assert "new" in text and "old" not in text and "Notes on" not in text


def test_finetune_task_vocab_rows(tiny_bert, tmp_path):
    import finetune_task_vocab
    import tiny

    from eliquare.models import load_model

    lines = []
    for n, sentence in enumerate(tiny.synthetic_sentences(40, seed=5)):
        lines += (
            [f"# sent_id = {n}"]
            + [f"{i}\t{w}\t_\tNOUN\t_\t_\t0\t_\t_\t_" for i, w in enumerate(sentence.split(), start=1)]
            + [""]
        )
    path = tmp_path / "t.conllu"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    loaded = load_model(str(tiny_bert), head="token-classification", labels=["a", "b"])
    features = finetune_task_vocab.task_features(loaded.tokenizer, str(path))
    rows = finetune_task_vocab.measure(
        loaded.model, loaded.tokenizer, features, batch_size=2, rounds=1, warmup=0, sentences=40
    )  # groups of 10: transformers makes at least 4 per pass
    assert [r["variant"] for r in rows] == ["full", "task", "task-grouped"]
    assert rows[1]["vocab"] < rows[0]["vocab"] and rows[1]["parameters"] < rows[0]["parameters"]
    assert rows[2]["vocab"] == rows[1]["vocab"] and all(r["batches"] == 20 for r in rows)
    assert rows[2]["padding"] < rows[1]["padding"] == rows[0]["padding"]
    assert all(r["seconds"] > 0 for r in rows) and rows[0]["speedup"] == 1.0
    assert len(data_lines(finetune_task_vocab.format_rows(rows))) == 3


def test_inference_of_saved_models(tiny_bert, tmp_path):
    from eliquare.distill.student import build_student
    from eliquare.models import load_model

    teacher = load_model(str(tiny_bert)).model
    build_student(teacher, [0, 2]).save_pretrained(tmp_path / "student")
    rows = inference.measure_saved(
        {"teacher": str(tiny_bert), "student": str(tmp_path / "student")}, rounds=1, batch=2, seq=8
    )
    assert [r["layers"] for r in rows] == [4, 2] and rows[0]["throughput_speedup"] == 1.0
    assert rows[1]["parameters"] < rows[0]["parameters"] and all(r["tokens_per_s"] > 0 for r in rows)
    assert len(data_lines(inference.format_saved(rows))) == 2


def test_sentence_encoding_of_saved_embedding_models(tmp_path, capsys):
    import sentence_encoding
    import tiny

    from eliquare.embedding import save_sentence_transformers
    from eliquare.embedding_spec import E5_SPEC

    model = tiny.build_tiny_xlmr(tmp_path / "m", with_mlm_head=False)
    save_sentence_transformers(model, E5_SPEC, 32)
    texts = tmp_path / "ner.txt"
    texts.write_text(
        "".join(
            f"{w} O\n" + ("\n" if i % 3 == 2 else "")
            for i, w in enumerate("Mtoto anasoma kitabu Mama anapika chakula Rais alihutubia bunge".split())
        )
    )
    sentence_encoding.main(
        ["--models", f"a={model}", f"b={model}", "--texts", str(texts), "--rounds", "1", "--no-append"]
    )
    out = capsys.readouterr().out
    assert "sentences / s" in out and "| a " in out and "1.000" in out


def test_export_benchmark_runs_on_tiny_models(tiny_bert, tiny_xlmr, capsys):
    pytest.importorskip("onnxruntime")
    import export as export_benchmark

    assert (
        export_benchmark.main(
            [
                "--models",
                f"teacher={tiny_xlmr}",
                f"student={tiny_bert}",
                "--batch",
                "2",
                "--seq",
                "8",
                "--rounds",
                "1",
                "--no-append",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("| teacher") or line.startswith("| student")]
    assert [line.split("|")[2].strip() for line in lines] == ["pytorch fp32", "onnx fp32", "onnx int8"] * 2
