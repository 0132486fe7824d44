"""Distil only the students of an experiment YAML, with the experiment's own `distil` stage (same fingerprint, same
directories), so that its fine-tunes can start later on another core:

    python -m analysis.distil_only experiments/sl-ner-annotated.yaml runs/sl-ner-annotated

Prints each student's key, what its stage did (distilled, resumed, done already) and its seconds.
"""

from __future__ import annotations

from pathlib import Path

from analysis.common import parser
from eliquare.config import ExperimentConfig
from eliquare.evaluate.suite import read_suite
from eliquare.experiment import distil, read_students


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__)
    ap.add_argument("experiment", help="the experiment YAML")
    ap.add_argument("out", help="the experiment's working directory (its students go to OUT/students)")
    ap.add_argument("--var", action="append", help="set a variable of the YAML, e.g. --var data=../shared/data")
    ap.add_argument("--dry-run", action="store_true", help="say what each student's stage would do; distil nothing")
    args = ap.parse_args(argv)
    cfg = ExperimentConfig(experiment=args.experiment, out=args.out, var=args.var)
    for student in read_students(read_suite(cfg.experiment, cfg.var), Path(cfg.out), cfg, cfg.experiment):
        print(student.key, *distil(student, args.dry_run), flush=True)


if __name__ == "__main__":
    main()
