"""Distil only the students of an experiment YAML, with the experiment's own `distil` stage (same fingerprint, same
directories), so that its fine-tunes can start later on another core:

    python results/sl-ner-annotated/distil-only.py experiments/sl-ner-annotated.yaml runs/sl-ner-annotated
"""
import sys
from pathlib import Path

from eliquare.config import ExperimentConfig
from eliquare.evaluate.experiment import distil, read_students
from eliquare.evaluate.suite import read_suite

cfg = ExperimentConfig(experiment=sys.argv[1], out=sys.argv[2])
for student in read_students(read_suite(cfg.experiment, cfg.var), Path(cfg.out), cfg, cfg.experiment):
    print(student.key, *distil(student, False), flush=True)
