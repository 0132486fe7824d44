"""Configuration machinery: a stage's dataclass as argparse flags, YAML and Python options, built the same way from
each (dataclass defaults < YAML file < flags given on the command line; field names are option names)."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from eliquare.errors import EliquareError, first_line

# ---------------------------------------------------------------------------------------------
# machinery: dataclass <-> argparse / YAML


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _nested(cls) -> dict[str, Any]:
    """Fields of ``cls`` that are option groups (dataclasses such as ``CorpusOptions``): name -> group class."""
    hints = _field_types(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])}


def help_sections(cls) -> list[tuple[str, str, tuple[str, ...]]]:
    """The sections of ``cls``'s options as its ``--help`` shows them: ``(title, what, field names)``, from the
    class's ``OPTION_GROUPS`` (the few things a user sets first, the advanced ones after); [] for a class without."""
    return [(title, what, tuple(names)) for title, what, names in getattr(cls, "OPTION_GROUPS", ())]


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls, positional: tuple[str, ...] = ()) -> None:
    """Add one option per dataclass field; defaults are SUPPRESSed so that YAML can sit between.

    The fields of an option group (a field whose type is a dataclass) are options of their own
    (``--min-words``, not ``--corpus-options-min-words``). A class with ``OPTION_GROUPS`` has its options shown
    under those sections' titles in ``--help``."""
    hints = _field_types(cls)
    groups = _nested(cls)
    section: dict[str, Any] = {}
    for title, what, names in help_sections(cls):
        shown = parser.add_argument_group(title, what)
        section.update(dict.fromkeys(names, shown))
    order = list(section)  # the sections' order, then the fields in none
    for f in sorted(dataclasses.fields(cls), key=lambda f: order.index(f.name) if f.name in section else len(order)):
        if not f.init or f.name.startswith("_"):
            continue
        target = section.get(f.name, parser)
        if f.name in groups:
            add_dataclass_arguments(target, groups[f.name])
            continue
        tp, _ = _unwrap_optional(hints[f.name])
        help_text = f.metadata.get("help", "")
        if "default" in help_text:
            pass  # the help text already says what happens by default
        elif f.default is not dataclasses.MISSING:
            help_text += f" (default: {f.default})"
        elif f.default_factory is not dataclasses.MISSING:
            help_text += f" (default: {f.default_factory()})"
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text, "dest": f.name}
        origin = get_origin(tp)
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is Literal:
            kwargs["choices"] = list(get_args(tp))
            kwargs["type"] = type(get_args(tp)[0])
        elif origin in (list, tuple):
            (inner,) = get_args(tp)[:1]
            kwargs["nargs"] = "+"
            kwargs["type"] = inner
            kwargs["action"] = "extend"  # --corpus a --corpus b: both
        elif tp in (int, float, str):
            kwargs["type"] = tp
        else:
            kwargs["type"] = str
        if f.name in positional:
            del kwargs["dest"]
            kwargs["nargs"] = kwargs.get("nargs", None)
            if kwargs["nargs"] is None:
                del kwargs["nargs"]
            kwargs["metavar"] = f.name.upper()
            target.add_argument(f.name, **kwargs)
        else:
            target.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def _coerce(name: str, tp: Any, value: Any, source: str) -> Any:
    tp, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise EliquareError(f"{source}: option '{name}' cannot be empty; give a value or leave it out")
    origin = get_origin(tp)
    try:
        if tp is bool:
            if isinstance(value, str):
                low = value.lower()
                if low in ("true", "yes", "1", "on"):
                    return True
                if low in ("false", "no", "0", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if origin is Literal:
            if value not in get_args(tp):
                raise ValueError(value)
            return value
        if origin in (list, tuple):
            inner = get_args(tp)[0]
            if isinstance(value, (str, int, float)):
                value = [value]
            return [_coerce(name, inner, v, source) for v in value]
        if tp in (int, float, str):
            if tp is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return tp(value)
    except (TypeError, ValueError):
        choices = f" (one of {', '.join(map(str, get_args(tp)))})" if origin is Literal else ""
        raise EliquareError(
            f"{source}: option '{name}' got {value!r}, which is not a valid {getattr(tp, '__name__', tp)}{choices}"
        ) from None
    return value


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise EliquareError(f"config file {p} does not exist; give the path of a YAML file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise EliquareError(f"config file {p} is not valid YAML ({first_line(e)}); fix the file") from None
    if not isinstance(data, dict):
        raise EliquareError(f"config file {p} must hold a mapping of option: value at the top level")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def build_config(cls, *sources: tuple[str, dict[str, Any]]):
    """Build ``cls`` from (source name, mapping) pairs, later sources overriding earlier ones.

    An option group's fields are given flat (``min_words: 5``) or under the group's name
    (``corpus_options: {min_words: 5}``)."""
    groups = _nested(cls)
    owner: dict[str, Any] = {}  # option name -> the class whose field it is
    for f in dataclasses.fields(cls):
        if f.init and f.name not in groups:
            owner[f.name] = cls
    for group in groups.values():
        owner.update({f.name: group for f in dataclasses.fields(group) if f.init})
    hints = {name: _field_types(where)[name] for name, where in owner.items()}
    merged: dict[str, Any] = {}
    for source, mapping in sources:
        for key, value in mapping.items():
            if key in groups and isinstance(value, dict):
                for inner, inner_value in value.items():
                    key_inner = str(inner).replace("-", "_")
                    if owner.get(key_inner) is not groups[key]:
                        raise EliquareError(
                            f"{source}: '{key}' has no option '{inner}'; known: "
                            f"{', '.join(f.name for f in dataclasses.fields(groups[key]))}"
                        )
                    merged[key_inner] = _coerce(key_inner, hints[key_inner], inner_value, source)
                continue
            if key not in owner:
                known = ", ".join(sorted(owner))
                raise EliquareError(f"{source}: unknown option '{key}'; known options: {known}")
            merged[key] = _coerce(key, hints[key], value, source)
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init
        and f.name not in groups
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and f.name not in merged
    ]
    if missing:
        flags = ", ".join("--" + m.replace("_", "-") for m in missing)
        raise EliquareError(f"missing required option(s) {flags}; give them on the command line or in --config")
    top = {k: v for k, v in merged.items() if owner[k] is cls}
    for name, group in groups.items():
        top[name] = group(**{k: v for k, v in merged.items() if owner[k] is group})
    return cls(**top)


def config_from_cli(cls, namespace: argparse.Namespace):
    """dataclass defaults < ``--config`` YAML < command-line flags."""
    given = {k: v for k, v in vars(namespace).items() if k not in ("config", "_handler", "verb")}
    sources: list[tuple[str, dict[str, Any]]] = []
    if getattr(namespace, "config", None):
        sources.append((f"config file {namespace.config}", load_yaml(namespace.config)))
    sources.append(("command line", given))
    return build_config(cls, *sources)


def to_dict(cfg) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def option_defaults(cls, names=None) -> dict[str, Any]:
    """The defaults of a config dataclass's fields (those in ``names``, or all), as a record written by ``to_dict``
    and read back from JSON holds them: what a run had when a record lacks an option added since."""
    import json

    out = {}
    for f in dataclasses.fields(cls):
        if names is not None and f.name not in names:
            continue
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            continue
        if dataclasses.is_dataclass(value):
            assert not isinstance(value, type)  # a field's default is an instance, never a class
            value = dataclasses.asdict(value)
        out[f.name] = json.loads(json.dumps(value, default=str))
    return out


def field(default=dataclasses.MISSING, *, help: str = "", default_factory=dataclasses.MISSING):  # noqa: A002
    """A dataclass field with a help text shown by ``eliquare VERB --help``."""
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})
