"""``--push-to-hub REPO``: upload a finished model directory, exactly the files a user publishes
(``eliquare.publish.published_files``), through ``huggingface_hub``."""

from __future__ import annotations

import re
from pathlib import Path

from eliquare.errors import EliquareError, first_line

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_push(repo_id: str) -> None:
    """Before anything is run or written: a repository id of the form user/name, and a hub token."""
    if not _REPO_ID.match(repo_id) or ".." in repo_id or repo_id.endswith((".git", "-", ".")):
        raise EliquareError(f"--push-to-hub {repo_id!r} is not a repository id; give user/name, e.g. me/sw-student")
    from huggingface_hub import get_token

    if not get_token():
        raise EliquareError("--push-to-hub needs a Hugging Face token: run `hf auth login`, or set HF_TOKEN")


def upload_list(directory: str | Path) -> list[str]:
    """The names of the files ``push`` uploads from ``directory``."""
    from eliquare.publish import published_files

    return [p.name for p in published_files(directory)]


def push(
    directory: str | Path, repo_id: str, *, private: bool = False, message: str | None = None, api=None, log=print
) -> str:
    """Create ``repo_id`` if needed and upload the published files of ``directory`` in one commit; returns the
    repository's address. ``api``: a ``huggingface_hub.HfApi`` (tests give a stand-in)."""
    directory = Path(directory)
    files = upload_list(directory)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(
            folder_path=str(directory),
            repo_id=repo_id,
            repo_type="model",
            allow_patterns=files,
            commit_message=message or f"eliquare: upload {directory.name}",
        )
    except Exception as e:  # network, permission, a name taken: one line, the student stays where it is
        raise EliquareError(
            f"--push-to-hub {repo_id}: the upload failed ({first_line(e)}); the model is in "
            f"{directory}, push it again later"
        ) from None
    log(f"uploaded {len(files)} files of {directory} to {repo_id}: {', '.join(files)}")
    return str(url)
