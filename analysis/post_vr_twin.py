"""Checks on a finished experiment that its post-VR student is its full-vocabulary twin's network reduced: the
twin's finished network is reduced again here (``eliquare.distill.post_reduce``) beside the post-VR student the
experiment distilled, and the two are compared tensor by tensor. Needs the experiment's run directory (students
are not committed):

    python -m analysis.post_vr_twin experiments/he.yaml --out runs/he --to /tmp/he-post-derived \\
        > results/post-vr-from-basic/he.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path


def check(experiment: str, out: str, to: str, student: str = "post-vr") -> dict:
    from safetensors.torch import load_file

    from eliquare.config import ExperimentConfig
    from eliquare.distill.post_reduce import reduce_distilled
    from eliquare.evaluate.suite import read_suite
    from eliquare.experiment.students import full_vocabulary_twin, read_students

    cfg = ExperimentConfig(experiment=experiment, out=out)
    students = read_students(read_suite(cfg.experiment, cfg.var), Path(out), cfg, experiment)
    post = next(s for s in students if s.name == student)
    twin = full_vocabulary_twin(post, students)
    if twin is None:
        raise SystemExit(f"{experiment}: {student} has no full-vocabulary twin")
    started = time.time()
    made = reduce_distilled(twin.config.out, dataclasses.replace(post.config, out=to), log=lambda m: None)
    seconds = time.time() - started
    direct_dir, twin_dir = Path(post.config.out), Path(twin.config.out)
    a, b = load_file(direct_dir / "model.safetensors"), load_file(made / "model.safetensors")
    direct, derived, full = (
        json.loads((d / "distillation.json").read_text(encoding="utf-8")) for d in (direct_dir, made, twin_dir)
    )
    return {
        "experiment": experiment,
        "student": student,
        "twin": twin.name,
        "tensors": len(a),
        "weights_identical": a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a),
        "vocab_report_identical": direct["vocab_reduce"] == derived["vocab_reduce"],
        "kept_ids": direct["vocab_reduce"]["vocab_size"]["after"],
        "student_parameters": [direct["student_parameters"], derived["student_parameters"]],
        "validation_identical_to_twin": direct["validation"] == full["validation"],
        "direct_distillation_seconds": direct["wall_seconds"],
        "twin_distillation_seconds": full["wall_seconds"],
        "reduction_seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment")
    parser.add_argument("--out", required=True, help="the experiment's run directory")
    parser.add_argument("--to", required=True, help="where the reduced twin is written")
    parser.add_argument("--student", default="post-vr")
    args = parser.parse_args(argv)
    print(json.dumps(check(args.experiment, args.out, args.to, args.student), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
