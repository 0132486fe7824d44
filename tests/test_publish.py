"""What `distill` hands over: only the published files, 0644, no pickle, a model card whose numbers are the
record's; --checkpoint-dir; --push-to-hub's upload list and call (the hub itself is not reached)."""

import json
import os
import re

import pytest

from eliquare.cli import main
from eliquare.config import DistillConfig
from eliquare.distill import distill

FAST = [
    "--student-layers",
    "2",
    "--batch-size",
    "16",
    "--gradient-accumulation",
    "1",
    "--max-steps",
    "2",
    "--eval-steps",
    "1",
]


@pytest.fixture(scope="module")
def student(tiny_xlmr, corpus_file, tmp_path_factory):
    root = tmp_path_factory.mktemp("published")
    out = distill(
        DistillConfig(
            teacher=str(tiny_xlmr),
            corpus=[str(corpus_file)],
            out=str(root / "sw"),
            student_layers=2,
            batch_size=16,
            gradient_accumulation=1,
            max_steps=2,
            eval_steps=1,
            cache_dir=str(root / "cache"),
            language="sw",
            datasets=["me/sw-corpus"],
        )
    )
    return out


def test_student_directory_holds_only_what_is_published(student):
    names = sorted(os.listdir(student))
    assert names == [
        "README.md",
        "config.json",
        "distillation.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert all(os.stat(student / n).st_mode & 0o777 == 0o644 for n in names)
    assert not (student.parent / "sw.checkpoints").exists()  # removed after success without --keep-checkpoints
    assert json.loads((student / "tokenizer_config.json").read_text())["tokenizer_class"] != "TokenizersBackend"


def test_model_card_numbers_are_the_records(student):
    from eliquare.card import _front_matter

    card = (student / "README.md").read_text()
    record = json.loads((student / "distillation.json").read_text())
    meta = _front_matter(card)
    assert meta["language"] == ["sw"] and meta["datasets"] == ["me/sw-corpus"] and "eliquare" in meta["tags"]
    assert "model-index" not in meta  # no evaluation yet
    assert record["data_fingerprint"] in card
    assert f"{record['student_parameters'] / 1e6:.1f} M" in card
    assert f"{record['corpus_stats']['sentences']:,} clean sentences" in card
    for row in record["validation"]:
        assert f"| {row['step']} | {row['eval_loss']:.4f} |" in card
    sps = record["inference"]["sequences_per_second"]
    assert f"{sps['student']:.1f}" in card and f"{sps['teacher']:.1f}" in card
    assert f"teacher layers {record['teacher_layers_used']}" in card
    command = re.search(r"```bash\n(.*)\n```", card).group(1)
    assert (
        command.startswith("eliquare distill --corpus ") and "--max-steps 2" in command and "--language sw" in command
    )


def test_evaluate_rows_update_the_card(student):
    from eliquare.card import _front_matter, update_cards

    rows = [
        {
            "model": "student",
            "model_spec": str(student),
            "dataset": "sw-ner",
            "task": "ner",
            "label": "NER",
            "metric": "f1",
            "score": 0.693,
            "seeds": [1],
            "status": "ok",
        },
        {
            "model": "teacher",
            "model_spec": json.loads((student / "distillation.json").read_text())["teacher"],
            "dataset": "sw-ner",
            "task": "ner",
            "label": "NER",
            "metric": "f1",
            "score": 0.657,
            "seeds": [1],
            "status": "ok",
        },
    ]
    assert update_cards(rows, log=lambda m: None) == [student / "README.md"]
    card = (student / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == 69.3
    assert "| sw-ner | NER | f1 | 69.3 | 65.7 | 1 |" in card
    assert os.stat(student / "README.md").st_mode & 0o777 == 0o644


def test_push_uploads_exactly_the_published_files(student, tmp_path):
    from eliquare.hub import push, upload_list

    (student / "notes.txt").write_text("not published")
    try:
        calls = []

        class FakeApi:
            def create_repo(self, repo_id, **kw):
                calls.append(("create_repo", repo_id, kw))
                return f"https://huggingface.co/{repo_id}"

            def upload_folder(self, **kw):
                calls.append(("upload_folder", kw))

        url = push(student, "me/sw-student", api=FakeApi(), log=lambda m: None)
        assert url == "https://huggingface.co/me/sw-student"
        assert calls[0] == ("create_repo", "me/sw-student", {"private": False, "exist_ok": True, "repo_type": "model"})
        upload = calls[1][1]
        assert upload["folder_path"] == str(student) and upload["repo_id"] == "me/sw-student"
        assert (
            upload["allow_patterns"]
            == upload_list(student)
            == [
                "README.md",
                "config.json",
                "distillation.json",
                "model.safetensors",
                "tokenizer.json",
                "tokenizer_config.json",
            ]
        )
    finally:
        (student / "notes.txt").unlink()


def test_push_to_hub_checks_before_running(tiny_bert, corpus_file, tmp_path, capsys, monkeypatch):
    base = ["distill", "--teacher", str(tiny_bert), "--corpus", str(corpus_file), "--out", str(tmp_path / "s"), *FAST]
    assert main([*base, "--push-to-hub", "not a repo"]) == 2
    assert "is not a repository id" in capsys.readouterr().err
    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    assert main([*base, "--push-to-hub", "me/student"]) == 2
    assert "needs a Hugging Face token" in capsys.readouterr().err
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.checkpoints").exists()


def test_checkpoint_dir_inside_out_is_refused(tiny_bert, corpus_file, tmp_path, capsys):
    out = tmp_path / "s"
    code = main(
        [
            "distill",
            "--teacher",
            str(tiny_bert),
            "--corpus",
            str(corpus_file),
            "--out",
            str(out),
            "--checkpoint-dir",
            str(out / "checkpoints"),
            *FAST,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "is inside --out" in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_checkpoint_dir_and_keep_checkpoints(tiny_bert, corpus_file, tmp_path, capsys):
    out, ckpt = tmp_path / "s", tmp_path / "elsewhere" / "ck"
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
        "--checkpoint-dir",
        str(ckpt),
        "--keep-checkpoints",
        *FAST,
    ]
    assert main(args) == 0, capsys.readouterr().err
    assert (ckpt / "checkpoint-2" / "optimizer.pt").is_file() and (ckpt / "run_settings.json").is_file()
    assert not any(p.suffix in (".bin", ".pt", ".pth") for p in out.iterdir())
    assert main([*args, "--max-steps", "4", "--resume"]) == 0, capsys.readouterr().err  # --resume finds them there
    assert json.loads((out / "distillation.json").read_text())["steps"] == 4
    assert main([a for a in args if a != "--keep-checkpoints"]) == 2  # an earlier run's checkpoints are in the way
    assert "holds an earlier run's checkpoints" in capsys.readouterr().err


def test_a_checkpoint_directory_with_other_files_is_refused(tiny_bert, corpus_file, tmp_path, capsys):
    """The run removes its checkpoint directory when it is done: a user's files there must not go with it."""
    ckpt = tmp_path / "mine"
    ckpt.mkdir()
    (ckpt / "notes.txt").write_text("precious")
    code = main(
        [
            "distill",
            "--teacher",
            str(tiny_bert),
            "--corpus",
            str(corpus_file),
            "--out",
            str(tmp_path / "s"),
            "--checkpoint-dir",
            str(ckpt),
            "--overwrite",
            *FAST,
        ]
    )
    assert code == 2 and "holds files that are not checkpoints (notes.txt)" in capsys.readouterr().err
    assert (ckpt / "notes.txt").read_text() == "precious" and not (tmp_path / "s").exists()
