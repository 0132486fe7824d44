"""A ``--vocab-reduce post`` student made from a finished full-vocabulary student of the same settings.

``--vocab-reduce post`` distils on the teacher's whole vocabulary and reduces the best checkpoint afterwards, so its
training is the full-vocabulary student's to the last digit when options, seed, corpus and teacher are the same
(the Hebrew post-VR and basic records agree in every evaluation). An experiment with both students distils once
and reduces the finished full-vocabulary student here, as ``save_student`` reduces at the end of a post run, into
the same directory: weights, tokenizer, ``distillation.json`` (with ``derived_from``) and model card."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from eliquare.atomic import Replacement, write_json
from eliquare.config import DistillConfig
from eliquare.distill.student_dir import reduce_after_distillation
from eliquare.errors import EliquareError
from eliquare.models import count_parameters
from eliquare.publish import finish_student_dir
from eliquare.speed import student_and_teacher
from eliquare.teachers import load_teacher
from eliquare.vocab import format_report, save_tokenizer


def reducible_record(source: str | Path) -> dict | None:
    """The ``distillation.json`` of a finished masked-LM student on the teacher's whole vocabulary (no VocabReduce,
    no VocabAmp), or None when ``source`` holds none (not finished, or another kind of student)."""
    try:
        record = json.loads((Path(source) / "distillation.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("objective") != "masked-lm" or record.get("vocab_reduce") or record.get("vocab_amp"):
        return None
    return record


def reduce_distilled(source: str | Path, cfg: DistillConfig, log=print) -> Path:
    """Write the student that ``distill(cfg)`` (``cfg.vocab_reduce == "post"``) would write, from ``source``, the
    finished student of the same settings on the whole vocabulary; returns ``cfg.out``."""
    if cfg.vocab_reduce != "post":
        raise EliquareError(f"{cfg.out}: only a --vocab-reduce post student is made from a full-vocabulary one")
    record = reducible_record(source)
    if record is None:
        raise EliquareError(
            f"{source} holds no finished full-vocabulary masked-LM student (distillation.json); distil it first"
        )
    from transformers import AutoModelForMaskedLM

    out = Path(cfg.out)
    replacement = Replacement(out, "the post-VR reduction of a distilled student")
    started = time.time()
    teacher = load_teacher(cfg.teacher)  # its tokenizer, as a post run reduces with, and its speed for the card
    student = AutoModelForMaskedLM.from_pretrained(str(source))
    reduction = reduce_after_distillation(cfg, student, teacher.tokenizer, log)  # as a post run reduces
    log(format_report(reduction.report))
    record.update(
        student_parameters=count_parameters(student),
        vocab_reduce=reduction.report,
        config=asdict(cfg),
        derived_from={"student": str(source), "wall_seconds": record.get("wall_seconds")},
        wall_seconds=round(time.time() - started, 1),  # the reduction's own; the distillation's is derived_from's
        inference=student_and_teacher(teacher.model, student, len(teacher.tokenizer)),
    )

    def save(work: Path) -> None:
        student.save_pretrained(work)
        save_tokenizer(reduction.tokenizer, reduction.slow_files, work)
        write_json(work / "distillation.json", record, indent=2)
        finish_student_dir(work)

    return replacement.write(save)
