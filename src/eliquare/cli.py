"""The `eliquare` command: one verb per pipeline stage.

Each verb is a stage config (a dataclass in ``eliquare.config``) plus the function that runs it;
options mirror the Python API. Bad input raises ``EliquareError``, printed as one line (exit 2).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass

from eliquare import __version__
from eliquare.config import add_dataclass_arguments, config_from_cli
from eliquare.errors import EliquareError


@dataclass(frozen=True)
class Verb:
    name: tuple[str, ...]  # ("distill",) or ("vocab", "reduce")
    config: str  # "eliquare.config:DistillConfig"
    run: str  # "eliquare.distill:distill" - called with the config object
    help: str
    positional: tuple[str, ...] = ()  # config fields taken as positional arguments


# The pipeline's stages, in the order data flows through them.
VERBS: list[Verb] = [
    Verb(("distill",), "eliquare.config:DistillConfig", "eliquare.distill:distill",
         "distil a monolingual student from a multilingual teacher"),
]


def _load(spec: str):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eliquare",
        description="Distil small monolingual models out of large multilingual transformers.",
    )
    parser.add_argument("--version", action="version", version=f"eliquare {__version__}")
    top = parser.add_subparsers(dest="verb", metavar="VERB")
    top.required = True
    groups: dict[str, argparse._SubParsersAction] = {}
    for verb in VERBS:
        where = top
        if len(verb.name) == 2:
            group = verb.name[0]
            if group not in groups:
                gp = top.add_parser(group, help=f"{group} commands")
                groups[group] = gp.add_subparsers(dest=f"{group}_verb", metavar="VERB")
                groups[group].required = True
            where = groups[group]
        sub = where.add_parser(verb.name[-1], help=verb.help, description=verb.help)
        sub.add_argument("--config", help="YAML file with options (command-line flags override it)")
        add_dataclass_arguments(sub, _load(verb.config), positional=verb.positional)
        sub.set_defaults(_handler=verb)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verb: Verb = args._handler
    ns = argparse.Namespace(**{k: v for k, v in vars(args).items() if not k.endswith("_verb")})
    try:
        config = config_from_cli(_load(verb.config), ns)
        result = _load(verb.run)(config)
    except EliquareError as e:
        print(f"eliquare: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("eliquare: interrupted", file=sys.stderr)
        return 130
    return int(result) if isinstance(result, int) and not isinstance(result, bool) else 0


if __name__ == "__main__":
    sys.exit(main())
