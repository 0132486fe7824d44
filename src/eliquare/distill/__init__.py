"""The distillation stage: teacher + corpus -> trained student directory (the paper's Sections 3-5).

Built on transformers' Trainer (checkpoints, exact resume, torchrun/accelerate data parallelism, gradient
accumulation, best-checkpoint selection). One module per idea:

- ``objective``: the loss step (Eq. 4 and its extensions), with the terms in ``losses`` and the masking
  (15%, 80/10/10, frequency smoothing) in ``masking``;
- ``student``: the student built from every other teacher layer; ``recipe``: the paper's and eliquare's settings;
- ``trainer``: the training loop and its callbacks; ``teacher_cache``: the teacher's states computed once;
- ``health``: collapse, CKA and probe measures at every evaluation; ``head``: an MLM head for a headless teacher;
- ``rundir`` and ``checkpoints``: the run directory, complete checkpoints and resume;
- ``plan``: what a run will do (objective, loss weights, recipe, steps, teacher cache), settled once the teacher and
  the corpus are known; ``trainer_setup``: the Trainer's arguments, datasets, collator and callbacks;
- ``student_dir``: what a run writes to ``--out`` (weights, tokenizer, ``distillation.json``);
- ``run``: the stage end to end (``distill``).
"""

from eliquare.distill.run import distill

__all__ = ["distill"]
