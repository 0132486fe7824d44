"""Where eliquare keeps what it can compute again: converted teachers, tokenised corpora, task encodings."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$ELIQUARE_CACHE``, else ``~/.cache/eliquare``."""
    return Path(os.environ.get("ELIQUARE_CACHE", Path.home() / ".cache" / "eliquare"))
