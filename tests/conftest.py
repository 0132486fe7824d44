from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import tiny  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return tiny.build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_bert_no_head(tmp_path_factory) -> Path:
    return tiny.build_tiny_bert(tmp_path_factory.mktemp("tiny-bert-base"), with_mlm_head=False)


@pytest.fixture(scope="session")
def tiny_xlmr(tmp_path_factory) -> Path:
    return tiny.build_tiny_xlmr(tmp_path_factory.mktemp("tiny-xlmr"))


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    return tiny.write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt", n=400)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (the ../shared/data beside the checkout)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _task_encodings_in_tmp(tmp_path_factory, monkeypatch):
    """Fine-tuning keeps task encodings in the user's cache: a test's go to its session's temporary directory."""
    import eliquare.evaluate.task_encodings as task_encodings

    where = tmp_path_factory.getbasetemp() / "task-encodings"
    monkeypatch.setattr(task_encodings, "encoding_cache_dir", lambda: where)
