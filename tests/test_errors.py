"""eliquare.errors: the one-line message, and the output checks every writing verb makes before anything slow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from oneline import assert_one_error

from eliquare.cli import main
from eliquare.errors import EliquareError, check_output_dir, check_writable


@pytest.fixture
def unwritable(tmp_path):
    """A directory this process may not write in (root writes through permission bits: then /sys)."""
    where = Path("/sys") if os.geteuid() == 0 else tmp_path / "read-only"
    if where != Path("/sys"):
        where.mkdir()
        where.chmod(0o555)
    try:
        (where / ".eliquare-test").touch()
    except OSError:
        pass
    else:
        (where / ".eliquare-test").unlink()
        pytest.skip(f"{where} is writable here")
    yield where
    if where != Path("/sys"):
        where.chmod(0o755)


def test_check_writable(tmp_path, unwritable):
    (tmp_path / "file").write_text("mine")
    assert check_writable(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no probe left
    with pytest.raises(EliquareError, match="is a file; give a directory"):
        check_writable(tmp_path / "file")
    with pytest.raises(EliquareError, match="lies under .*file, which is a file"):
        check_writable(tmp_path / "file" / "sub")
    with pytest.raises(EliquareError, match="cannot be written .* choose a directory you can write to"):
        check_writable(unwritable / "out")
    with pytest.raises(EliquareError, match="cannot be written"):
        check_output_dir(unwritable / "out", overwrite=False)
    assert (tmp_path / "file").read_text() == "mine"


VERBS = {  # the other inputs do not exist: the --out check must come first, before they are even looked at
    "distill": ["distill", "--teacher", "no-such-teacher-dir/", "--corpus", "no-such-corpus.txt"],
    "finetune": ["finetune", "--model", "no-such-model-dir/", "--task", "pos", "--train", "no-such.conllu"],
    "vocab reduce": ["vocab", "reduce", "--model", "no-such-model-dir/", "--corpus", "no-such-corpus.txt"],
}


@pytest.mark.parametrize("verb", list(VERBS))
@pytest.mark.parametrize("case", ["unwritable", "under_a_file", "a_file"])
def test_an_out_that_cannot_be_written_fails_first(verb, case, tmp_path, unwritable, capsys):
    (tmp_path / "file").write_text("mine")
    out, expect = {
        "unwritable": (unwritable / "out", "cannot be written"),
        "under_a_file": (tmp_path / "file" / "out", "lies under .*file, which is a file"),
        "a_file": (tmp_path / "file", "--out .*file is a file; give a directory"),
    }[case]
    code = main([*VERBS[verb], "--out", str(out)])
    assert_one_error(code, capsys.readouterr().err, expect)
    assert (tmp_path / "file").read_text() == "mine"


@pytest.mark.parametrize("verb", list(VERBS))
def test_the_verb_itself_checks_its_out(verb, tmp_path, unwritable):
    """The Python API (no CLI in front) refuses it too."""
    from eliquare.config import DistillConfig, FinetuneConfig, VocabReduceConfig
    from eliquare.distill import distill
    from eliquare.evaluate.finetune import finetune
    from eliquare.vocab import reduce_command

    out = str(unwritable / "out")
    run = {
        "distill": lambda: distill(DistillConfig(corpus=["no-such.txt"], out=out)),
        "finetune": lambda: finetune(FinetuneConfig(model="no-such/", task="pos", train="no-such.conllu", out=out)),
        "vocab reduce": lambda: reduce_command(VocabReduceConfig(model="no-such/", corpus=["x.txt"], out=out)),
    }
    with pytest.raises(EliquareError, match="cannot be written"):
        run[verb]()
