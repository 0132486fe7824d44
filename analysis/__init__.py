"""The scripts behind the committed tables of results/: each reads the records of an experiment (committed
results.json / metrics.json files, or the models and predictions an experiment left in runs/) and writes a table or a
JSON file into results/<experiment>/. Run each from the repository root as ``python -m analysis.<module> ...``;
its docstring gives the command that wrote its committed output.

- ``headline``: the headline table (results/headline), teacher against its pre-VR students on four tasks, gathered
  from committed results only;
- ``collapse``, ``collapse_variants``: the health tables of results/collapse;
- ``beyond_the_paper``: results/beyond-the-paper's results.json and report.md from the runs' records;
- ``distil_only``: the distil stage of an experiment YAML alone (its fine-tunes can then run elsewhere);
- ``ner_tokenisation``: NER recall on the entities a reduced vocabulary tokenises differently, and on the rest;
- ``vocab_thresholds``: VocabReduce's vocabulary and entity tokenisation at several thresholds;
- ``sw_length_fragmentation``, ``sw_length_positions``: how much of a news article fits in 128 tokens, and a
  student's token states by position against the teacher's (results/sw-length);
- ``sw_news_frozen``: frozen-feature probes of the sw news articles' last-layer states (results/sw-news-epochs).

``common`` holds what they share: where the repository and the real data are, reading records, writing files.
"""
