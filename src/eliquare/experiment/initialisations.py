"""The experiment's ``initialisations:``: the untrained initialisation of a student (the teacher's layers that
initialise it, on its vocabulary: ``eliquare.distill.health.reference_models``), written once the student is
distilled and fine-tuned as a model of its own, the floor that says what distillation added.

    initialisations:
      init: basic        # a model named init: student basic's initialisation, for each of its languages

Each is written to ``OUT/initialisations/NAME/LANGUAGE`` with ``initialisation.json`` (the student it belongs to
and that student's fingerprint), and written again when the student is distilled again."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

from eliquare.atomic import swap_in, write_json
from eliquare.errors import EliquareError
from eliquare.experiment.students import Student, distillation_record

RECORD = "initialisation.json"


@dataclasses.dataclass
class Initialisation:
    name: str
    student: Student
    out: Path

    @property
    def key(self) -> str:
        return f"{self.name}/{self.student.language}"


def read_initialisations(raw: dict, students: list[Student], out: Path, where: str) -> list[Initialisation]:
    """The ``initialisations:`` section (name: student), checked against the students and the models."""
    section = raw.get("initialisations") or {}
    if not isinstance(section, dict):
        raise EliquareError(f"{where}: initialisations: must map a model name to a student's name (init: basic)")
    names = {s.name for s in students}
    models = {str(m.get("name")) for m in raw.get("models") or [] if isinstance(m, dict)}
    found = []
    for name, of in section.items():
        name = str(name)
        if not isinstance(of, str) or of not in names:
            raise EliquareError(
                f"{where}, initialisations.{name}: {of!r} is not a student of this experiment; give one of "
                f"{', '.join(sorted(names)) or '(none: add students:)'}"
            )
        if name in names or name in models:
            raise EliquareError(
                f"{where}, initialisations.{name}: a student or model already has that name; give the "
                "initialisation a name of its own"
            )
        for student in students:
            if student.name == of:
                found.append(Initialisation(name, student, out / "initialisations" / name / student.language))
    return found


def write_initialisation(init: Initialisation, dry_run: bool, student_changing: bool = False) -> tuple[str, float]:
    """``(what happened, seconds)``: the initialisation written, or found written from the same student.
    ``student_changing``: a dry run's student that is to be distilled again (its initialisation then is too)."""
    from eliquare.fingerprint import recorded

    source = Path(init.student.config.out)
    of_student = recorded(source)
    try:
        done = json.loads((init.out / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        done = None
    same = isinstance(done, dict) and of_student is not None and done.get("student_fingerprint") == of_student
    if same and not student_changing:
        return "done already (same student)", 0.0
    if dry_run:
        return "to run: write it", 0.0
    record = distillation_record(source)
    if not record:
        raise EliquareError(f"initialisation {init.key}: student {source} has no distillation.json; distil it first")
    from eliquare.distill.health import reference_models
    from eliquare.models import load_tokenizer

    started = time.perf_counter()
    tokenizer = load_tokenizer(str(source))
    layers = [i - 1 for i in record["teacher_layers_used"]]
    _, initial = reference_models(record["teacher"], tokenizer, layers)
    work = init.out.with_name(f".{init.out.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    initial.save_pretrained(work)
    tokenizer.save_pretrained(str(work))
    write_json(
        work / RECORD,
        {
            "student": str(source),
            "student_fingerprint": of_student,
            "teacher": record["teacher"],
            "teacher_layers_used": record["teacher_layers_used"],
            "what": "the student's untrained initialisation: these teacher layers on its vocabulary",
        },
        indent=2,
    )
    swap_in(work, init.out)
    return ("written again (the student changed)" if done else "written"), time.perf_counter() - started
