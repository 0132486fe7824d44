"""Nothing lost, nothing silent: kill -9 at seeded random moments, then rerun or --resume.

- corpus preparation: the rerun reuses or rebuilds the token-id cache and gets the same data; two processes
  preparing one corpus at once share it; a damaged cache entry is rebuilt with a notice;
- distillation (a tiny teacher, 8 steps, a checkpoint every 3): killed at random, or while a checkpoint is
  being written; the rerun (``--resume``, or ``--overwrite`` when no complete checkpoint is left) ends with
  exactly the weights of an uninterrupted run, and a half-written checkpoint is skipped, never loaded;
- ``eliquare evaluate``: the rerun ends with the uninterrupted run's table.

The default suite kills a few times; ``-m slow`` kills 20+ times (figures printed with ``-s``, and appended
to ``$ELIQUARE_FAULT_REPORT`` when it is set). ``faults.py`` explains how the kills are made.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

import faults
import pytest
import tiny
import torch
from safetensors.torch import load_file

from eliquare.corpus import prepare_corpus
from eliquare.distill.checkpoints import MARKER, checkpoints_of, why_incomplete

# ---------------------------------------------------------------------------------------------
# corpus preparation


@pytest.fixture(scope="module")
def prep(tiny_xlmr, tmp_path_factory):
    """A corpus big enough for its preparation to take a while, the tokenizer, and the uninterrupted result."""
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("prep")
    corpus = tiny.write_corpus(root / "corpus.txt", n=6000, seed=3)
    tokenizer = AutoTokenizer.from_pretrained(tiny_xlmr)
    reference = prepare_corpus([corpus], tokenizer, cache_dir=root / "reference-cache", log=lambda m: None)
    timed = faults.run(_prepare_job(corpus, tokenizer, root / "timed-cache"), root / "timed.log")  # what it takes
    assert timed.code == 0, timed.log  # in a child that has everything imported, as the killed ones will
    return dict(root=root, corpus=corpus, tokenizer=tokenizer, seconds=timed.seconds, reference=_data_of(reference))


def _prepare_job(corpus, tokenizer, cache):
    def job():
        prepare_corpus([corpus], tokenizer, cache_dir=cache, log=lambda m: print(m, flush=True))
        return 0

    return job


def _data_of(prepared) -> tuple:
    return (
        prepared.train["input_ids"],
        prepared.validation["input_ids"],
        prepared.token_counts.tolist(),
        prepared.stats.as_dict(),
    )


def _check_cache(prep, cache: Path) -> None:
    """The cache holds one complete entry (and its lock file), which loads to the uninterrupted run's data."""
    logs = []
    data = prepare_corpus([prep["corpus"]], prep["tokenizer"], cache_dir=cache, log=logs.append)
    assert logs == [f"corpus: reusing tokenised data from {data.path}"]
    assert _data_of(data) == prep["reference"]
    assert sorted(p.name for p in cache.iterdir()) == sorted([data.path.name, f"{data.path.name}.lock"])


def _corpus_kills(prep, trials: int, seed: int) -> dict:
    rng = random.Random(seed)
    kills = tracebacks = rebuilt = 0
    for trial in range(trials):
        cache = prep["root"] / f"cache-{seed}-{trial}"
        job = _prepare_job(prep["corpus"], prep["tokenizer"], cache)
        for _again in range(3):  # a run that ended before its kill came is run again, killed at another moment
            shutil.rmtree(cache, ignore_errors=True)
            killed = faults.run(job, cache.with_suffix(".killed.log"), kill_after=rng.uniform(0, 0.9 * prep["seconds"]))
            if killed.killed:
                break
        kills += killed.killed
        rerun = faults.run(job, cache.with_suffix(".rerun.log"))
        assert rerun.code == 0, rerun.log
        tracebacks += faults.tracebacks(killed.log + rerun.log)
        rebuilt += "corpus: reading" in rerun.log
        _check_cache(prep, cache)
    assert tracebacks == 0
    return dict(kills=kills, rebuilt=rebuilt, reused=trials - rebuilt, identical_data=trials, tracebacks=tracebacks)


def test_killed_corpus_preparation_is_rebuilt_or_reused(prep):
    figures = _corpus_kills(prep, trials=2, seed=0)
    assert figures["kills"] >= 1
    faults.report("corpus preparation (default suite)", **figures)


@pytest.mark.slow
def test_killed_corpus_preparation_many(prep):
    figures = _corpus_kills(prep, trials=8, seed=1)
    assert figures["kills"] >= 6
    faults.report("corpus preparation", **figures)


def test_two_processes_preparing_one_corpus_share_the_cache(prep):
    """Guards against: both built KEY.partial at once (each deleting the other's) and the loser's rename failed."""
    cache = prep["root"] / "shared-cache"
    job = _prepare_job(prep["corpus"], prep["tokenizer"], cache)
    ctx = __import__("multiprocessing").get_context("fork")
    logs = [cache.parent / f"shared-{i}.log" for i in range(2)]
    procs = [ctx.Process(target=faults._child, args=(job, str(log))) for log in logs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    texts = [log.read_text() for log in logs]
    assert [p.exitcode for p in procs] == [0, 0], texts
    assert sum("corpus: reading" in t for t in texts) == 1, texts  # one built it; the other waited, then reused it
    assert sum("reusing tokenised data" in t for t in texts) == 1, texts
    _check_cache(prep, cache)


def test_a_kill_of_one_of_two_preparing_processes_leaves_the_other_a_good_cache(prep):
    cache = prep["root"] / "shared-kill-cache"
    job = _prepare_job(prep["corpus"], prep["tokenizer"], cache)
    ctx = __import__("multiprocessing").get_context("fork")
    first = ctx.Process(target=faults._child, args=(job, str(cache.parent / "sk-0.log")))
    second = ctx.Process(target=faults._child, args=(job, str(cache.parent / "sk-1.log")))
    first.start()
    second.start()
    time.sleep(random.Random(5).uniform(0.1, 0.9) * prep["seconds"])
    __import__("os").kill(first.pid, 9)
    first.join()
    second.join(timeout=300)
    assert second.exitcode == 0, (cache.parent / "sk-1.log").read_text()
    _check_cache(prep, cache)
    faults.report("two processes, one killed", kills=int(first.exitcode == -9), survivor_exit=second.exitcode)


def test_a_damaged_cache_entry_is_rebuilt_with_a_notice(prep):
    cache = prep["root"] / "damaged-cache"
    first = prepare_corpus([prep["corpus"]], prep["tokenizer"], cache_dir=cache, log=lambda m: None)
    with open(first.path / "train.arrow", "r+b") as fh:  # a truncated file, as a full disk or a bad copy leaves it
        fh.truncate(fh.seek(0, 2) // 2)
    logs = []
    again = prepare_corpus([prep["corpus"]], prep["tokenizer"], cache_dir=cache, log=logs.append)
    assert any(
        m.startswith(f"notice: corpus: the cached data in {first.path} is damaged (train.arrow has ") for m in logs
    ), logs
    assert _data_of(again) == prep["reference"]
    (again.path / "done.json").unlink()  # an entry without its completeness marker is not used either
    logs = []
    prepare_corpus([prep["corpus"]], prep["tokenizer"], cache_dir=cache, log=logs.append)
    assert any("no readable done.json" in m for m in logs), logs
    _check_cache(prep, cache)


def test_a_cache_that_cannot_be_written_is_read_or_named(prep, monkeypatch):
    """A shared read-only cache: its complete entries are used; a missing one is one line (was a traceback)."""
    import eliquare.corpus.prepare as prepare

    cache = prep["root"] / "read-only-cache"
    prepare_corpus([prep["corpus"]], prep["tokenizer"], cache_dir=cache, log=lambda m: None)

    def denied(self, path, log):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("eliquare.corpus.cache_entry.CorpusLock.__init__", denied)
    logs = []
    data = prepare_corpus([prep["corpus"]], prep["tokenizer"], cache_dir=cache, log=logs.append)
    assert _data_of(data) == prep["reference"] and logs[-1].endswith("(a read-only cache)")
    with pytest.raises(
        prepare.EliquareError,
        match=r"cannot write the corpus cache .*other \(Permission denied\); "
        "give --cache-dir DIR",
    ):
        prepare_corpus([prep["corpus"]], prep["tokenizer"], cache_dir=prep["root"] / "other", log=logs.append)


# ---------------------------------------------------------------------------------------------
# distillation

STEPS, EVERY = 8, 3  # checkpoints 3, 6 and 8


def _distill_argv(teacher, corpus, out, cache) -> list[str]:
    return [
        "distill",
        "--teacher",
        str(teacher),
        "--corpus",
        str(corpus),
        "--out",
        str(out),
        "--cache-dir",
        str(cache),
        "--student-layers",
        "2",
        "--batch-size",
        "8",
        "--gradient-accumulation",
        "2",
        "--max-steps",
        str(STEPS),
        "--eval-steps",
        str(EVERY),
        "--learning-rate",
        "3e-3",
        "--logging-steps",
        "2",
        "--health-sentences",
        "16",
        "--keep-checkpoints",
    ]  # the checkpoints are compared after the run


def _checkpoints(out: Path) -> Path:
    """The run's checkpoint directory (the default --checkpoint-dir, OUT.checkpoints beside OUT)."""
    return out.parent / f"{out.name}.checkpoints"


@pytest.fixture(scope="module")
def reference_run(tiny_xlmr, corpus_file, tmp_path_factory):
    import eliquare.distill  # noqa: F401  (imported before the children fork: they start where the work starts)

    root = tmp_path_factory.mktemp("distill-faults")
    out = root / "reference"
    fresh = faults.run(_distill_argv(tiny_xlmr, corpus_file, out, root / "cache"), root / "reference.log")
    assert fresh.code == 0, fresh.log  # the time of a whole run, corpus preparation included: where kills land
    warm = faults.run(_distill_argv(tiny_xlmr, corpus_file, root / "timed", root / "cache"), root / "timed.log")
    assert warm.code == 0, warm.log  # and with the corpus prepared already
    return dict(
        root=root, teacher=tiny_xlmr, corpus=corpus_file, out=out, seconds=warm.seconds, seconds_fresh=fresh.seconds
    )


def _same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(a), load_file(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def _being_written(checkpoints: Path, step: int, written: str | None = None):
    """A trigger: checkpoint-STEP exists without its completeness marker (the Trainer is writing it), with
    ``written`` in it already if given (``optimizer.pt``: mid-way; ``trainer_state.json``: the Trainer is done,
    eliquare's marker not yet)."""

    def seen():
        c = checkpoints / f"checkpoint-{step}"
        if c.is_dir() and not (c / MARKER).exists() and (written is None or (c / written).exists()):
            return f"{c.name} being written ({len(list(c.iterdir()))} files so far)"
        return None

    return seen


def _distill_trial(
    ref,
    name: str,
    rng: random.Random,
    *,
    kills: int,
    at_checkpoint: bool,
    fresh_cache: bool,
    fresh_interpreter: bool = False,
):
    """Kill the run (and the reruns, ``kills`` times in all), then rerun as a user would until it completes.

    ``fresh_interpreter``: every run is ``sys.executable -m eliquare`` (not a fork); a random kill is then drawn
    from the moment the run reaches its corpus (after the seconds of imports)."""
    root = ref["root"]
    out = root / name
    cache = root / (f"cache-{name}" if fresh_cache else "cache")
    argv = _distill_argv(ref["teacher"], ref["corpus"], out, cache)
    outcomes, mode, half_written, left = [], [], 0, []
    for attempt in range(2 * kills + 4):
        if (out / "distillation.json").is_file():
            break
        args = (
            argv
            if not out.exists()
            else argv + (["--overwrite"] if mode and mode[-1] == "no-checkpoint" else ["--resume"])
        )
        kill = {}
        if len([o for o in outcomes if o.killed]) < kills:
            if at_checkpoint:
                step = rng.choice([EVERY, 2 * EVERY, STEPS])
                written = rng.choice([None, "optimizer.pt", "trainer_state.json"])
                kill = dict(
                    kill_after=rng.choice([0, rng.uniform(0, 0.005), rng.uniform(0, 0.03)]),
                    trigger=_being_written(_checkpoints(out), step, written),
                )
            else:
                kill = dict(kill_after=rng.uniform(0, 0.9 * ref["seconds_fresh" if fresh_cache else "seconds"]))
                if fresh_interpreter:
                    log = root / f"{name}-{attempt}.log"
                    kill["trigger"] = lambda log=log: "at its corpus" if "corpus: " in log.read_text() else None
        o = faults.run(args, root / f"{name}-{attempt}.log", fresh=fresh_interpreter, **kill)
        outcomes.append(o)
        if o.killed:
            mode.append("killed")
            if o.seen.startswith("checkpoint-"):  # did the kill land before the checkpoint was complete?
                c = _checkpoints(out) / o.seen.split()[0]
                if c.is_dir() and not (c / MARKER).exists():
                    half_written += 1
                    left.append(f"{c.name}: {sorted(f.name for f in c.iterdir())}, no marker")
                else:
                    left.append(f"{c.name}: complete")
        elif o.code == 2 and ("no checkpoint found" in o.log or "no complete checkpoint" in o.log):
            assert o.log.strip().splitlines()[-1].startswith("eliquare: error: --resume: no"), o.log
            mode.append("no-checkpoint")
        else:
            assert o.code == 0, o.log
            mode.append("done")
    assert (out / "distillation.json").is_file(), mode
    left_over = [why_incomplete(c) for c in checkpoints_of(_checkpoints(out))]  # what a later resume would find
    assert left_over and all(why is None for why in left_over), (left_over, mode)
    assert _same_weights(ref["out"] / "model.safetensors", out / "model.safetensors"), name
    assert _same_weights(
        _checkpoints(ref["out"]) / f"checkpoint-{STEPS}" / "model.safetensors",
        _checkpoints(out) / f"checkpoint-{STEPS}" / "model.safetensors",
    ), name
    a, b = (json.loads((d / "distillation.json").read_text()) for d in (ref["out"], out))
    assert a["best_validation_loss"] == b["best_validation_loss"] and a["steps"] == b["steps"] == STEPS
    assert [e["eval_loss"] for e in a["validation"]] == [e["eval_loss"] for e in b["validation"]]
    logs = "".join(o.log for o in outcomes)
    return dict(
        kills=sum(o.killed for o in outcomes),
        half_written_left=half_written,
        passed_over=sum(
            logs.count(s)
            for s in ("notice: --resume skips", "notice: --resume removes", "--resume: no complete checkpoint")
        ),
        left=left,
        tracebacks=faults.tracebacks(logs),
        modes=mode,
    )


def _distill_kills(ref, trials: list[dict], seed: int, stage: str) -> dict:
    rng = random.Random(seed)
    total = dict(
        kills=0,
        identical_runs=0,
        kills_leaving_a_half_written_checkpoint=0,
        incomplete_checkpoints_passed_over=0,
        tracebacks=0,
    )
    for i, trial in enumerate(trials):
        for again in range(3):  # a run that ended before its kill came is run again, killed at another moment
            figures = _distill_trial(ref, f"{stage}-{seed}-{i}-{again}", rng, **trial)
            assert figures["tracebacks"] == 0
            total["kills"] += figures["kills"]
            total["identical_runs"] += 1
            total["incomplete_checkpoints_passed_over"] += figures["passed_over"]  # named, never loaded
            total["kills_leaving_a_half_written_checkpoint"] += figures["half_written_left"]
            print(f"  trial {i}.{again} {trial}: {figures}")
            if figures["kills"] == trial["kills"]:
                break
    faults.report(stage, **total)
    return total


def test_killed_distillation_resumes_to_the_same_weights(reference_run):
    total = _distill_kills(
        reference_run,
        [dict(kills=1, at_checkpoint=False, fresh_cache=False), dict(kills=1, at_checkpoint=True, fresh_cache=False)],
        seed=0,
        stage="distillation (default suite)",
    )
    assert total["kills"] >= 1


@pytest.mark.slow
def test_killed_distillation_many(reference_run):
    trials = (
        [dict(kills=1, at_checkpoint=False, fresh_cache=i % 2 == 0) for i in range(4)]
        + [dict(kills=2, at_checkpoint=False, fresh_cache=False) for _ in range(2)]
        + [dict(kills=1, at_checkpoint=True, fresh_cache=False) for _ in range(4)]
        + [
            dict(kills=1, at_checkpoint=False, fresh_cache=True, fresh_interpreter=True),
            dict(kills=1, at_checkpoint=True, fresh_cache=False, fresh_interpreter=True),
        ]
    )
    total = _distill_kills(reference_run, trials, seed=1, stage="distillation")
    assert total["kills"] >= 12


def test_resume_from_the_last_checkpoint_takes_no_step_more(reference_run):
    """Killed once the Trainer has saved checkpoint-8 (the last), while the best model is loaded and the student
    written: --resume writes the student and trains no further (not: one step more, checkpoint-9, and a
    distillation.json of 9 steps and 5 evaluations)."""
    ref, root = reference_run, reference_run["root"]
    out = root / "at-the-end"
    argv = _distill_argv(ref["teacher"], ref["corpus"], out, root / "cache")
    last = _checkpoints(out) / f"checkpoint-{STEPS}"
    killed = faults.run(
        argv, root / "at-the-end-0.log", kill_after=0, trigger=lambda: "marked" if (last / MARKER).exists() else None
    )
    assert killed.killed and not (out / "distillation.json").exists(), killed.log
    older = _checkpoints(out) / f"checkpoint-{2 * EVERY}"  # and an older one half deleted, as a kill during the
    for name in (MARKER, "rng_state.pth"):  # Trainer's rotation leaves it: removed too (it stayed for good)
        (older / name).unlink()
    again = faults.run([*argv, "--resume"], root / "at-the-end-1.log")
    assert again.code == 0, again.log
    assert f"notice: --resume removes {older}, left incomplete (rng_state.pth missing)" in again.log, again.log
    a, b = (json.loads((d / "distillation.json").read_text()) for d in (ref["out"], out))
    assert b["steps"] == STEPS and [e["step"] for e in a["validation"]] == [e["step"] for e in b["validation"]]
    assert [c.name for c in checkpoints_of(_checkpoints(out))] == [f"checkpoint-{STEPS}"]
    assert _same_weights(ref["out"] / "model.safetensors", out / "model.safetensors")


def test_a_damaged_last_checkpoint_is_skipped_by_resume(reference_run):
    """Killed just after checkpoint-8 was complete; then its optimizer.pt is damaged: --resume says so, continues
    from checkpoint-6 and ends with the uninterrupted run's weights (not: a torch traceback, or a silent fresh
    optimizer when the file was missing)."""
    ref, root = reference_run, reference_run["root"]
    out = root / "damaged"
    argv = _distill_argv(ref["teacher"], ref["corpus"], out, root / "cache")
    last = _checkpoints(out) / f"checkpoint-{STEPS}"
    killed = faults.run(
        argv, root / "damaged-0.log", kill_after=0, trigger=lambda: "marked" if (last / MARKER).exists() else None
    )
    assert killed.killed, killed.log
    with open(last / "optimizer.pt", "r+b") as fh:
        fh.truncate(100)
    again = faults.run([*argv, "--resume"], root / "damaged-1.log")
    assert again.code == 0, again.log
    assert (
        f"notice: --resume skips {last} (optimizer.pt has 100 bytes, " in again.log
        and "continues from checkpoint-6" in again.log
    ), again.log
    assert _same_weights(ref["out"] / "model.safetensors", out / "model.safetensors")
    shutil.rmtree(_checkpoints(out) / "checkpoint-6")  # and with no complete checkpoint left: one line
    (out / "distillation.json").unlink()
    for c in checkpoints_of(_checkpoints(out)):
        (c / "trainer_state.json").write_text("{")
        (c / MARKER).unlink()
    nothing = faults.run([*argv, "--resume"], root / "damaged-2.log")
    assert nothing.code == 2 and faults.tracebacks(nothing.log) == 0
    assert (
        nothing.log.strip()
        .splitlines()[-1]
        .startswith(f"eliquare: error: --resume: no complete checkpoint in {_checkpoints(out)} (checkpoint-")
    ), nothing.log


# ---------------------------------------------------------------------------------------------
# eliquare evaluate

SUITE = """
defaults: {max_steps: 2, warmup_steps: 0, seeds: [7], progress: false, save_model: true}
models:
  - {name: tiny, model: "${model}"}
datasets:
  - {name: xx-pos, language: xx, task: pos, label: UPOS, train: "${data}/pos.conllu"}
  - {name: xx-topic, language: xx, task: classify, label: topic, train: "${data}/topic.tsv", label_column: "0",
     text_column: ["1"], header: false}
"""


@pytest.fixture(scope="module")
def suite(tiny_bert, tmp_path_factory):
    import eliquare.evaluate.finetune  # noqa: F401  (see reference_run)
    import eliquare.evaluate.suite  # noqa: F401

    root = tmp_path_factory.mktemp("evaluate-faults")
    data = root / "data"
    data.mkdir()
    rows = []
    for i in range(40):
        rows += [f"1\tmtoto{i}\tmtoto\tNOUN\t_\t_\t0\troot\t_\t_", "2\tanasoma\tsoma\tVERB\t_\t_\t1\tdep\t_\t_", ""]
    (data / "pos.conllu").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (data / "topic.tsv").write_text(
        "".join(f"{'a' if i % 2 else 'b'}\tmama {'sokoni' if i % 2 else 'leo'} {i}\n" for i in range(40)),
        encoding="utf-8",
    )
    path = root / "suite.yaml"
    path.write_text(SUITE, encoding="utf-8")

    def argv(out):
        return ["evaluate", "--suite", str(path), "--var", f"data={data}", f"model={tiny_bert}", "--out", str(out)]

    reference = faults.run(argv(root / "reference"), root / "reference.log")
    assert reference.code == 0, reference.log
    timed = faults.run(argv(root / "timed"), root / "timed.log")  # warm, as the killed runs will be
    return dict(root=root, argv=argv, seconds=timed.seconds, rows=_scores(root / "reference"))


def _scores(out: Path) -> list:
    rows = json.loads((out / "results.json").read_text())["rows"]
    return [(r["model"], r["dataset"], r["status"], r["score"]) for r in rows]


def _evaluate_kills(suite, trials: int, seed: int) -> dict:
    rng = random.Random(seed)
    kills = tracebacks = 0
    for trial in range(trials):
        out = suite["root"] / f"out-{seed}-{trial}"
        for _again in range(3):  # a run that ended before its kill came is run again, killed at another moment
            shutil.rmtree(out, ignore_errors=True)
            killed = faults.run(
                suite["argv"](out), out.with_suffix(".killed.log"), kill_after=rng.uniform(0, 0.9 * suite["seconds"])
            )
            if killed.killed:
                break
        kills += killed.killed
        rerun = faults.run(suite["argv"](out), out.with_suffix(".rerun.log"))
        assert rerun.code == 0, rerun.log
        tracebacks += faults.tracebacks(killed.log + rerun.log)
        assert _scores(out) == suite["rows"]
    assert tracebacks == 0
    return dict(kills=kills, identical_tables=trials, tracebacks=tracebacks)


def test_killed_evaluate_reruns_to_the_same_table(suite):
    figures = _evaluate_kills(suite, trials=1, seed=0)
    faults.report("evaluate (default suite)", **figures)


@pytest.mark.slow
def test_killed_evaluate_many(suite):
    figures = _evaluate_kills(suite, trials=5, seed=1)
    assert figures["kills"] >= 4
    faults.report("evaluate", **figures)


# ---------------------------------------------------------------------------------------------
# eliquare vocab reduce --overwrite


def _snapshot(directory: Path) -> dict:
    return {str(f.relative_to(directory)): f.read_bytes() for f in sorted(directory.rglob("*")) if f.is_file()}


def _vocab_kills(tiny_bert, corpus_file, root: Path, trials: int, seed: int) -> dict:
    import eliquare.vocab.reduce  # noqa: F401  (see reference_run)

    def argv(out, size):
        return [
            "vocab",
            "reduce",
            "--model",
            str(tiny_bert),
            "--corpus",
            str(corpus_file),
            "--out",
            str(out),
            "--max-size",
            str(size),
            "--overwrite",
        ]

    made = {size: faults.run(argv(root / f"ref-{size}", size), root / f"ref-{size}.log") for size in (120, 90)}
    assert all(o.code == 0 for o in made.values()), [o.log for o in made.values()]
    old, new = _snapshot(root / "ref-120"), _snapshot(root / "ref-90")
    rng = random.Random(seed)
    figures = dict(kills=0, old_kept=0, new_complete=0, tracebacks=0)
    for trial in range(trials):
        out = root / f"out-{trial}"
        shutil.copytree(root / "ref-120", out)
        partial = root / f"out-{trial}.partial"
        kill = (
            dict(kill_after=rng.uniform(0, made[90].seconds))
            if trial % 2 == 0
            else dict(kill_after=rng.uniform(0, 0.05), trigger=lambda: "saving" if partial.exists() else None)
        )  # mid-save
        o = faults.run(argv(out, 90), root / f"out-{trial}.log", **kill)
        figures["kills"] += o.killed
        figures["tracebacks"] += faults.tracebacks(o.log)
        now = _snapshot(out)
        assert now in (old, new), sorted(set(now) ^ set(old))  # the old output whole, or the new one whole
        figures["old_kept" if now == old else "new_complete"] += 1
        rerun = faults.run(argv(out, 90), root / f"out-{trial}-rerun.log")  # and the rerun clears the leftover
        assert rerun.code == 0 and _snapshot(out) == new, rerun.log
        assert not (root / f"out-{trial}.partial").exists()
    assert figures["tracebacks"] == 0
    return figures


def test_killed_vocab_reduce_overwrite_keeps_old_or_new(tiny_bert, corpus_file, tmp_path):
    faults.report("vocab reduce --overwrite (default suite)", **_vocab_kills(tiny_bert, corpus_file, tmp_path, 2, 0))


@pytest.mark.slow
def test_killed_vocab_reduce_many(tiny_bert, corpus_file, tmp_path):
    figures = _vocab_kills(tiny_bert, corpus_file, tmp_path, 5, 1)
    assert figures["kills"] >= 3
    faults.report("vocab reduce --overwrite", **figures)
