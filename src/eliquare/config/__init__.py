"""Configuration: one dataclass per pipeline stage (``distill``, ``evaluate``, ``stages``: the other verbs), built by
``fields`` from Python, YAML and flags; ``options`` holds what several stages share.

A stage's config is built the same way from Python, from a YAML file and from CLI flags:
dataclass defaults < YAML file (``--config``) < flags given on the command line. The field
names are the option names (``max_steps`` <-> ``--max-steps``).
"""

from eliquare.config.distill import DistillConfig
from eliquare.config.evaluate import CompareConfig, EvaluateConfig, FinetuneConfig, HealthConfig, ReportConfig
from eliquare.config.fields import (
    add_dataclass_arguments,
    build_config,
    config_from_cli,
    field,
    load_yaml,
    option_defaults,
    to_dict,
)
from eliquare.config.options import (
    DEFAULT_VOCAB_COVERAGE,
    LAYER_MAP_ALIASES,
    PACKAGED_PREFIX,
    PAPER_ALPHA_CE,
    PAPER_ALPHA_MLM,
    PAPER_VOCAB_MIN_FRACTION,
    CorpusOptions,
    check_coverage,
    check_masked_text,
    check_max_length,
    check_vocab_selection,
    parse_student_layers,
    vocab_selection,
)
from eliquare.config.records import upgrade_distill_record
from eliquare.config.stages import (
    ExperimentConfig,
    ExportConfig,
    FitHeadConfig,
    TeacherExportConfig,
    VocabAmpConfig,
    VocabReduceConfig,
)

__all__ = [
    "add_dataclass_arguments",
    "load_yaml",
    "build_config",
    "config_from_cli",
    "to_dict",
    "option_defaults",
    "field",
    "PAPER_VOCAB_MIN_FRACTION",
    "DEFAULT_VOCAB_COVERAGE",
    "check_vocab_selection",
    "vocab_selection",
    "CorpusOptions",
    "check_coverage",
    "check_masked_text",
    "check_max_length",
    "PACKAGED_PREFIX",
    "LAYER_MAP_ALIASES",
    "parse_student_layers",
    "PAPER_ALPHA_CE",
    "PAPER_ALPHA_MLM",
    "DistillConfig",
    "upgrade_distill_record",
    "FinetuneConfig",
    "EvaluateConfig",
    "CompareConfig",
    "ReportConfig",
    "HealthConfig",
    "ExportConfig",
    "ExperimentConfig",
    "VocabReduceConfig",
    "VocabAmpConfig",
    "TeacherExportConfig",
    "FitHeadConfig",
]
