"""What the benchmark scripts share: model shapes, random-weight models, timing, tables, the benchmarks log and
BENCHMARKS.md.

Every figure a script reports is a ratio of timings taken in the same process, on the same machine,
with the variants interleaved round by round (other work on the machine slows all of them alike) and
the median of the rounds kept.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers

transformers.utils.logging.disable_progress_bar()  # save_pretrained's "Writing model shards" bars

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"


@dataclass(frozen=True)
class Shape:
    """A BERT-shaped teacher: the sizes that decide speed and memory (weights are random)."""

    name: str
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    kept: int  # vocabulary VocabReduce keeps for one language (see the scripts' notes)
    pad_token_id: int = 0
    cls_token_id: int = 101
    sep_token_id: int = 102
    mask_token_id: int = 103

    def config(self):
        from transformers import BertConfig

        return BertConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=512,
            pad_token_id=self.pad_token_id,
        )

    @property
    def special_ids(self) -> list[int]:
        return sorted({self.pad_token_id, self.cls_token_id, self.sep_token_id, self.mask_token_id})


SHAPES = {
    # bert-base-multilingual-cased
    "mbert": Shape("mbert", 119_547, 768, 12, 12, 3072, kept=25_000),
    # intfloat/multilingual-e5-small (XLM-R vocabulary; <s>=0 <pad>=1 </s>=2 <mask>=250001)
    "e5-small": Shape(
        "e5-small",
        250_037,
        384,
        12,
        12,
        1536,
        kept=20_000,
        pad_token_id=1,
        cls_token_id=0,
        sep_token_id=2,
        mask_token_id=250_001,
    ),
    # for smoke tests
    "tiny": Shape("tiny", 2_000, 64, 4, 2, 128, kept=500),
}


def build_teacher(shape: Shape, seed: int = 0):
    """A BertForMaskedLM of ``shape`` with random weights (an MLM head attached, as mBERT has one)."""
    from transformers import BertForMaskedLM

    torch.manual_seed(seed)
    return BertForMaskedLM(shape.config()).eval()


def kept_ids_for(shape: Shape, seed: int = 0) -> torch.Tensor:
    """``shape.kept`` old ids as VocabReduce would keep them: the special tokens, then other ids, in id order."""
    g = torch.Generator().manual_seed(seed)
    special = torch.tensor(shape.special_ids)
    others = torch.ones(shape.vocab_size, dtype=torch.bool)
    others[special] = False
    pool = torch.nonzero(others).flatten()
    picked = pool[torch.randperm(len(pool), generator=g)[: shape.kept - len(special)]]
    return torch.cat([special, picked.sort().values])


def reduced_copy(model, kept_ids: torch.Tensor):
    """A copy of ``model`` cut to ``kept_ids`` with VocabReduce's own slicing (embeddings, decoder, bias)."""
    from eliquare.vocab.slicing import slice_vocabulary

    reduced = copy.deepcopy(model)
    slice_vocabulary(reduced, kept_ids.numpy())
    return reduced


def token_ids(shape: Shape, batch: int, seq: int, kept_ids: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A full-length batch ([CLS] ... [SEP]) of ordinary ids drawn from ``kept_ids``: text in the kept vocabulary."""
    g = torch.Generator().manual_seed(seed)
    ordinary = kept_ids[len(shape.special_ids) :]
    ids = ordinary[torch.randint(len(ordinary), (batch, seq), generator=g)]
    ids[:, 0], ids[:, -1] = shape.cls_token_id, shape.sep_token_id
    return ids


def masked_batch(shape: Shape, batch: int, seq: int, kept_ids: torch.Tensor, seed: int = 0) -> dict:
    """``token_ids`` masked by eliquare's collator (15%, 80/10/10), as a distillation batch."""
    from eliquare.distill.masking import MaskingCollator

    ids = token_ids(shape, batch, seq, kept_ids, seed)
    # uniform selection weights over the kept ordinary ids (random replacements are drawn from them too)
    weights = torch.zeros(shape.vocab_size)
    weights[kept_ids[len(shape.special_ids) :]] = 1.0
    collator = MaskingCollator(shape.pad_token_id, shape.mask_token_id, weights, seed=seed)
    attention = torch.ones_like(ids)
    masked, labels = collator.mask(ids, attention)
    return {"input_ids": masked, "attention_mask": attention, "labels": labels}


def renumber(ids: torch.Tensor, kept_ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Ids in the reduced vocabulary: old id kept_ids[i] becomes i."""
    new_id = torch.full((vocab_size,), -1, dtype=torch.long)
    new_id[kept_ids] = torch.arange(len(kept_ids))
    out = new_id[ids]
    assert (out >= 0).all(), "an id outside the kept vocabulary"
    return out


def renumbered(batch: dict, kept_ids: torch.Tensor, vocab_size: int) -> dict:
    """The same masked batch in the reduced vocabulary (-100 labels stay)."""
    labels = batch["labels"].clone()
    target = labels >= 0
    labels[target] = renumber(labels[target], kept_ids, vocab_size)
    return dict(batch, input_ids=renumber(batch["input_ids"], kept_ids, vocab_size), labels=labels)


def to_device(batch: dict, device: str) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


# ---------------------------------------------------------------------------------------------
# timing


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def autocast(device: str, bf16: bool):
    """bf16 autocast for --bf16 (as the Trainer's --bf16 does), a no-op otherwise."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)


def interleaved(
    variants: dict[str, Callable[[], object]], rounds: int, warmup: int = 1, device: str = "cpu", log=None
) -> dict[str, list[float]]:
    """Seconds per call of every variant: each round calls every variant once, in turn (warm-up rounds dropped).

    Every other round runs the variants in reverse order, so that none always follows the same one.
    """
    times: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants.items())
    for r in range(warmup + rounds):
        for name, fn in order[::-1] if r % 2 else order:
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            elapsed = time.perf_counter() - start
            if r >= warmup:
                times[name].append(elapsed)
            if log:
                log(f"  round {r + 1 - warmup if r >= warmup else 'warm-up'} {name}: {elapsed:.3f} s")
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def peak_matmul(n: int = 4096, device: str = "cpu", dtype: torch.dtype = torch.float32) -> tuple[Callable, float]:
    """A large square matmul (the kernel a model's matmuls aspire to) and its FLOP count; time it in the rounds."""
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    return (lambda: torch.matmul(a, b, out=out)), 2.0 * n**3


# ---------------------------------------------------------------------------------------------
# tables and BENCHMARKS.md


def machine() -> str:
    from eliquare.speed import machine as this_machine

    parts = [this_machine()]
    if hasattr(os, "getloadavg"):  # other work on the machine slows every variant, and small ops most
        parts.append("load average at the end {:.1f} / {:.1f} / {:.1f} (1 / 5 / 15 min)".format(*os.getloadavg()))
    return "; ".join(parts)


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table; numbers are written as given (format them before)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda row: "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells)])


def command_line() -> str:
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(ROOT)
    except ValueError:
        pass
    return shlex.join([".venv/bin/python", str(script), *sys.argv[1:]])


LOG_MD = ROOT / "benchmarks" / "log.md"  # every table ever recorded, newest last
LATEST = ROOT / "benchmarks" / "latest"  # the newest table of each benchmark, one file per title
INDEX_HEAD = """# Benchmarks

The newest table of each benchmark, built by `.venv/bin/python benchmarks/regenerate.py` from
`benchmarks/latest/` (each script records its table there when it runs; `--run NAME` reruns scripts first). Every
ratio is measured within one run, on the machine and at the date given under its command. The tables of earlier
runs, newest last: `benchmarks/log.md`.
"""


def slug(title: str) -> str:
    """A file name for a benchmark's title: its words, lower case, joined by hyphens."""
    words = "".join(c.lower() if c.isalnum() else " " for c in title).split()
    return "-".join(words)[:80]


def write_index(latest: Path = LATEST, path: Path = BENCHMARKS_MD) -> str:
    """BENCHMARKS.md: a contents list and the newest table of each benchmark (sorted by title)."""
    sections = sorted(
        (f.read_text(encoding="utf-8").strip() for f in latest.glob("*.md")), key=lambda t: t.splitlines()[0].lower()
    )
    titles = [t.splitlines()[0][3:] for t in sections]
    contents = "\n".join(f"- [{t}](#{slug(t)})" for t in titles)
    text = INDEX_HEAD + "\n" + contents + "\n\n" + "\n\n".join(sections) + "\n"
    path.write_text(text, encoding="utf-8")
    return text


def report(
    title: str, body: str, append: bool = True, path: Path = LOG_MD, latest: Path = LATEST, index: Path = BENCHMARKS_MD
) -> str:
    """Print ``body`` (tables and notes) with the command, date and machine; with ``append``, add it to the log,
    make it the benchmark's newest table and rebuild BENCHMARKS.md."""
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    text = f"## {title}\n\n`{command_line()}` ({stamp})\n\n{machine()}\n\n{body.rstrip()}\n"
    print(text)
    if append:
        new = not path.exists()
        with open(path, "a", encoding="utf-8") as fh:
            if new:
                fh.write(
                    "# Benchmarks log\n\nEvery table the scripts in `benchmarks/` recorded (newest last); every "
                    "ratio is measured within one run. The newest of each: BENCHMARKS.md.\n"
                )
            fh.write("\n" + text)
        latest.mkdir(parents=True, exist_ok=True)
        (latest / f"{slug(title)}.md").write_text(text, encoding="utf-8")
        write_index(latest, index)
    return text
