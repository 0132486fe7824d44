"""Downstream evaluation: dataset readers, task metrics, fine-tuning, suites of jobs, significance tests,
tables.

- ``eliquare.tasks.readers``: CoNLL-U, token-per-line BIO, TSV/CSV/JSONL -> train/dev/test;
- ``eliquare.evaluate.metrics``: POS accuracy, entity-level NER F1, macro-F1;
- ``eliquare.evaluate.finetune``: ``finetune(FinetuneConfig(...))`` (``eliquare finetune``);
- ``eliquare.evaluate.suite``: ``evaluate(EvaluateConfig(...))`` (``eliquare evaluate``);
- ``eliquare.evaluate.results``: the results row and ``read_results`` (results.json, metrics.json);
- ``eliquare.evaluate.compare``: Wilcoxon signed-rank test (``eliquare compare``);
- ``eliquare.evaluate.report``: the paper's tables and figures (``eliquare report``).
"""
