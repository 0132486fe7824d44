"""VocabAmp (the paper's future work): add the target language's own subwords to a multilingual vocabulary.

1. A tokenizer of the model's own family (SentencePiece unigram or WordPiece) is trained on the target corpus, with
   the model's normaliser and pre-tokeniser.
2. Its word-initial pieces that the model's vocabulary lacks are scored by how much they shorten the corpus: how
   often the trained tokenizer uses the piece, times the pieces the model needs to spell it, minus one. The ``n``
   best are added (``--add N``).
3. Each new piece's embedding (and MLM decoder bias) starts as the mean of the model's embeddings of the pieces that
   spell it (its old segmentation). A unigram piece's score is its old segmentation's log-probability plus a margin,
   so that the Viterbi segmentation prefers it wherever it applies; WordPiece's longest match takes it by itself.

Combine with VocabReduce by reducing first (``eliquare vocab reduce``), then amplifying the reduced model.
``CrossTokenisation`` lets ``distill --vocab-amp`` train a student on the new vocabulary against the teacher on its
own: the teacher reads each sentence spelled in its own pieces, and a sentence whose teacher spelling is longer than
the teacher's position limit is cut for both sides (``CrossTokenisation.fit``).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from eliquare.errors import EliquareError
from eliquare.vocab.families import tokenizer_family
from eliquare.vocab.tokenizer_json import load_reduced_tokenizer, tokenizer_json

MARGIN = 1.0  # log-probability a new unigram piece wins by over the segmentation it replaces


@dataclass
class Amplification:
    model: Any  # a transformers model and tokenizer (untyped)
    tokenizer: Any
    added: list  # (piece, old pieces, uses in the corpus sample)
    report: dict

    def save(self, out: str | Path) -> Path:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(out)
        self.tokenizer.save_pretrained(str(out))
        (out / "vocab_amp_report.json").write_text(
            json.dumps(self.report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        return out


def train_target_tokenizer(tj: dict, sentences: list[str], vocab_size: int):
    """A tokenizer of ``tj``'s family (unigram or WordPiece) trained on ``sentences``, same normaliser and
    pre-tokeniser."""
    from tokenizers import Tokenizer, models, trainers

    kind = tj["model"]["type"]
    base = Tokenizer.from_str(json.dumps(tj))
    trainer: trainers.Trainer
    if kind == "Unigram":
        base.model = models.Unigram()
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, show_progress=False, special_tokens=[], unk_token=None)
    elif kind == "WordPiece":
        base.model = models.WordPiece(unk_token=tj["model"].get("unk_token", "[UNK]"))
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size,
            show_progress=False,
            continuing_subword_prefix=tj["model"].get("continuing_subword_prefix", "##"),
        )
    else:
        raise EliquareError(f"VocabAmp supports unigram (XLM-R, e5) and WordPiece (BERT, mBERT) tokenizers, not {kind}")
    base.post_processor = None
    base.train_from_iterator(sentences, trainer)
    return base


def _surface(piece: str, kind: str) -> str | None:
    """The text a word-initial piece stands for (None for a word-internal one)."""
    if kind == "Unigram":
        return piece[1:] if piece.startswith("\u2581") and len(piece) > 1 else None
    return None if piece.startswith("##") else piece


def tokens_per_word(tokenizer, sentences: list[str]) -> float:
    words = sum(len(s.split()) for s in sentences)
    pieces = sum(len(ids) for ids in tokenizer(sentences, add_special_tokens=False)["input_ids"])
    return pieces / max(words, 1)


def _candidates(tokenizer, trained, sentences: list[str], kind: str) -> list[tuple[int, str, list[int], int]]:
    """``(saving, piece, old ids, uses)`` of the trained tokenizer's pieces the vocabulary lacks and splits in two
    or more, best first: a piece saves ``uses * (old pieces - 1)`` tokens on the sample."""
    vocab = tokenizer.get_vocab()
    uses: Counter = Counter()
    for enc in trained.encode_batch(sentences, add_special_tokens=False):
        uses.update(enc.tokens)
    candidates = []
    for piece, n in uses.items():
        surface = _surface(piece, kind)
        if piece in vocab or surface is None or len(surface) < 2:
            continue
        old = tokenizer(surface, add_special_tokens=False)["input_ids"]
        if len(old) >= 2:
            candidates.append((n * (len(old) - 1), piece, old, n))
    candidates.sort(key=lambda c: (-c[0], c[1]))
    return candidates


def _extended_tokenizer_json(tj: dict, vocab: dict, start: int, chosen: list) -> dict:
    """A copy of ``tokenizer.json`` with the chosen pieces appended from id ``start``; a Unigram piece scores
    its old pieces' scores summed plus ``MARGIN``, so that it wins over them."""
    new_tj = json.loads(json.dumps(tj))
    if tj["model"]["type"] != "Unigram":
        for k, (_, piece, _, _) in enumerate(chosen):
            new_tj["model"]["vocab"][piece] = start + k
        return new_tj
    scores = {p: s for p, s in tj["model"]["vocab"]}
    id_to_piece = {i: p for p, i in vocab.items()}
    pieces = new_tj["model"]["vocab"]
    beyond = {t["id"]: t["content"] for t in tj.get("added_tokens", []) if t["id"] >= len(pieces)}
    while len(pieces) < start:  # added tokens numbered past the pieces (a <mask> after them) become pieces,
        pieces.append([beyond.get(len(pieces), f"<unused{len(pieces)}>"), 0.0])  # as e5 has it: ids unchanged
    for _, piece, old, _ in chosen:
        pieces.append([piece, sum(scores.get(id_to_piece[i], -20.0) for i in old) + MARGIN])
    return new_tj


def amplify_vocabulary(
    model,
    tokenizer,
    sentences: Iterable[str],
    *,
    add: int = 1000,
    trained_size: int = 8000,
    sample: int = 20_000,
    seed: int = 0,
) -> Amplification:
    """Add up to ``add`` target-language pieces to ``tokenizer`` and ``model`` (resized in place), see the module."""
    started = time.perf_counter()
    if add < 1:
        raise EliquareError("--add must be at least 1 (pieces to add)")
    sentences = list(sentences)
    if not sentences:
        raise EliquareError("the corpus holds no sentences; give target-language text")
    random.Random(seed).shuffle(sentences)
    sentences = sentences[:sample]
    tj = tokenizer_json(tokenizer)
    tokenizer_family(tj)  # an unsupported family is reported here
    kind = tj["model"]["type"]
    trained = train_target_tokenizer(tj, sentences, trained_size)
    candidates = _candidates(tokenizer, trained, sentences, kind)
    chosen = candidates[:add]
    if not chosen:
        raise EliquareError(
            "the trained tokenizer found no piece the vocabulary lacks; the corpus is too small or "
            "already tokenised well (tokens per word near 1)"
        )
    before = tokens_per_word(tokenizer, sentences)
    start = len(tokenizer)
    amplified = load_reduced_tokenizer(tokenizer, _extended_tokenizer_json(tj, tokenizer.get_vocab(), start, chosen))
    _grow_embeddings(model, start, [old for _, _, old, _ in chosen])
    after = tokens_per_word(amplified, sentences)
    report = {
        "tokenizer_family": kind,
        "vocab_size": {"before": start, "after": len(amplified)},
        "trained_vocab_size": trained_size,
        "candidates": len(candidates),
        "added": len(chosen),
        "sample_sentences": len(sentences),
        "tokens_per_word": {"before": round(before, 4), "after": round(after, 4)},
        "examples": [
            {"piece": p, "old_pieces": tokenizer.convert_ids_to_tokens(o), "uses": n} for _, p, o, n in chosen[:20]
        ],
        "initialisation": "mean of the old pieces' embeddings (and MLM decoder bias)",
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(
        f"vocab amp: {len(chosen)} pieces added ({start:,} -> {len(amplified):,}); tokens per word {before:.3f} -> "
        f"{after:.3f} on {len(sentences):,} sentences",
        file=sys.stderr,
    )
    return Amplification(model, amplified, [(p, o, n) for _, p, o, n in chosen], report)


@torch.no_grad()
def _grow_embeddings(model, start: int, spellings: list[list[int]]) -> None:
    """Append one embedding row per new piece: the mean of the rows of the pieces that spell it."""
    old = model.get_input_embeddings().weight
    if old.shape[0] < start:
        raise EliquareError(
            f"the model has {old.shape[0]} embeddings for a tokenizer of {start} ids; give the model's own tokenizer"
        )
    rows = torch.stack([old[ids].mean(0) for ids in spellings])
    bias_rows = None
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    bias = getattr(head, "bias", None) if head is not None else None
    if bias is not None:
        bias_rows = torch.stack([bias[ids].mean(0) for ids in spellings])
    model.resize_token_embeddings(start + len(spellings), mean_resizing=False)
    model.get_input_embeddings().weight[start:] = rows
    if bias_rows is not None:
        model.get_output_embeddings().bias[start:] = bias_rows
    model.tie_weights()


def amplify_command(cfg) -> Path:
    """``eliquare vocab amp``: add target-language subwords to a saved model and write it to ``cfg.out``."""
    from eliquare.corpus import expand_paths, iter_sentences
    from eliquare.errors import check_output_dir
    from eliquare.models import load_model

    out = check_output_dir(cfg.out, cfg.overwrite)
    expand_paths(cfg.corpus)
    loaded = load_model(cfg.model, head="as-saved")
    result = amplify_vocabulary(
        loaded.model,
        loaded.tokenizer,
        iter_sentences(cfg.corpus, cfg.corpus_options),
        add=cfg.add,
        trained_size=cfg.trained_vocab_size,
        sample=cfg.sample_sentences,
    )
    result.report["model"] = cfg.model
    result.save(out)
    print(f"amplified model written to {out}")
    return out


class CrossTokenisation:
    """Distillation across two vocabularies (``distill --vocab-amp N``): the student reads the amplified vocabulary,
    the teacher its own. Every new piece is spelled by the old pieces it replaced, so a student sequence maps to a
    teacher sequence of the same text by spelling out the new pieces; each student token owns a span of teacher
    tokens (one for an old piece) and the two align token by token, hence word by word.

    - the teacher sees the student's masks on the whole span of a masked token (both sides see the same masked words);
    - the hidden-state term compares each student state with the mean of its span's teacher states;
    - the soft-target term is computed where the masked token is an old piece (a span of one, the same id on both
      sides) over the old vocabulary, and skipped at new pieces, whose distribution the teacher cannot give.

    The student's sentence fits ``--max-length`` (checked to be within both models' position limit), but spelled in
    the old pieces it is longer and can exceed ``limit``, the longest input the teacher takes. ``fit`` cuts such a
    sentence for both sides alike before either model reads it: it keeps the student tokens from the start whose
    spans fit within ``limit`` together with the sentence's closing special token ([SEP], </s>), which stays at
    the end, and drops the rest from the student's input, its labels and its attention mask. Both models then read
    the same shortened text, so the alignment and the span-mean hidden term are exact on what is kept; the loss
    terms cover the kept tokens only. The first cut of a run is logged (one notice line).
    """

    report: dict  # the amplification's report, set by ``of``

    def __init__(
        self,
        old_size: int,
        spellings: list[list[int]],
        mask_token_id: int,
        pad_token_id: int,
        limit: int | None = None,
        special_ids: Iterable[int] = (),
    ):
        self.old_size = old_size
        self.mask_token_id = mask_token_id
        self.pad_token_id = pad_token_id
        self.limit = limit  # the teacher's longest input in tokens (None: no limit)
        self.special_ids = torch.tensor(sorted(set(special_ids)), dtype=torch.long)
        self.noticed = False  # the notice of a cut is given once
        longest = max((len(s) for s in spellings), default=1)
        table = torch.full((old_size + len(spellings), longest), -1, dtype=torch.long)
        table[:old_size, 0] = torch.arange(old_size)
        for k, ids in enumerate(spellings):
            table[old_size + k, : len(ids)] = torch.tensor(ids)
        self.table = table
        self.lengths = (table >= 0).sum(1)

    @classmethod
    def of(cls, amplification: Amplification, old_size: int, limit: int | None = None) -> CrossTokenisation:
        """``limit``: the longest input the teacher takes (``eliquare.models.length_limit`` of the teacher)."""
        tok = amplification.tokenizer
        cross = cls(
            old_size,
            [old for _, old, _ in amplification.added],
            tok.mask_token_id,
            tok.pad_token_id,
            limit=limit,
            special_ids=tok.all_special_ids,
        )
        cross.report = amplification.report
        return cross

    def _spans(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor):
        """The original ids (masked tokens as their labels), and how many teacher tokens each student token
        becomes (0 for padding)."""
        original = torch.where(labels != -100, labels, input_ids)
        span = torch.where(
            attention_mask.bool(), self.lengths.to(input_ids.device)[original], torch.zeros_like(original)
        )
        return original, span

    def fit(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The student batch with each sentence whose teacher spelling is longer than ``limit`` cut for both sides
        (see the class): ``(input_ids, attention_mask, labels)``, the tensors themselves when nothing is cut.
        Batches are right-padded (``MaskingCollator.pad``)."""
        if self.limit is None or not input_ids.numel():
            return input_ids, attention_mask, labels
        original, span = self._spans(input_ids, attention_mask, labels)
        over = (span.sum(1) > self.limit).nonzero().flatten().tolist()
        if not over:
            return input_ids, attention_mask, labels
        ids, mask, t_labels = input_ids.clone(), attention_mask.clone(), labels.clone()
        specials = self.special_ids.to(input_ids.device)
        for row in over:
            real = attention_mask[row].nonzero().flatten()
            last = real[-1:]
            closes = bool(torch.isin(original[row, last], specials).any())  # [SEP] / </s> stays at the end
            body = real[:-1] if closes else real
            room = self.limit - (int(span[row, last].sum()) if closes else 0)
            keep = body[span[row, body].cumsum(0) <= room]  # a prefix: the spans are positive
            if closes:
                keep = torch.cat([keep, last])
            n = len(keep)
            ids[row, :n], mask[row, :n], t_labels[row, :n] = input_ids[row, keep], 1, labels[row, keep]
            ids[row, n:], mask[row, n:], t_labels[row, n:] = self.pad_token_id, 0, -100
        width = int(mask.sum(1).max())  # the columns beyond every row's end are padding only
        if not self.noticed:
            self.noticed = True
            if os.environ.get("RANK", "0") == "0":  # one line per run, not one per process
                print(
                    f"notice: {len(over)} of a batch's {len(ids)} sentences are longer than the teacher's limit of "
                    f"{self.limit} tokens once spelled in its own pieces (--vocab-amp); such sentences are cut for "
                    "the student and the teacher alike to the tokens that fit (the closing token kept), and the "
                    "loss covers the kept tokens only (logged once)",
                    file=sys.stderr,
                    flush=True,
                )
        return ids[:, :width], mask[:, :width], t_labels[:, :width]

    def teacher_batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> dict:
        """The teacher's view of a student batch: ``input_ids``, ``attention_mask``, ``labels`` (the old piece at
        each masked span of one: where the soft targets are computed), ``owner`` (the student position of each
        teacher token, -1 for padding) and ``ce_positions`` (which of the student's masked positions have a teacher
        label, in order). Give a batch ``fit`` has cut: its view is at most ``limit`` tokens long."""
        device = input_ids.device
        selected = labels != -100
        table = self.table.to(device)
        original, span = self._spans(input_ids, attention_mask, labels)
        width = int(span.sum(1).max()) if span.numel() else 0
        if self.limit is not None and width > self.limit:
            raise ValueError(
                f"the teacher's view is {width} tokens, above its limit of {self.limit}: the batch was "
                "not cut by CrossTokenisation.fit"
            )
        b, t = input_ids.shape
        ids = torch.full((b, max(width, 1)), self.pad_token_id, dtype=torch.long, device=device)
        mask = torch.zeros_like(ids)
        t_labels = torch.full_like(ids, -100)
        owner = torch.full_like(ids, -1)
        for row in range(b):
            n = int(span[row].sum())
            if n == 0:
                continue
            keep = span[row] > 0
            spelled = table[original[row][keep]]  # [tokens, longest]
            flat = spelled[spelled >= 0]
            positions = torch.arange(t, device=device)[keep].repeat_interleave(span[row][keep])
            masked_here = selected[row][positions]
            flat = torch.where(masked_here, torch.full_like(flat, self.mask_token_id), flat)
            ids[row, :n], mask[row, :n], owner[row, :n] = flat, 1, positions
            single = masked_here & (span[row][positions] == 1) & (original[row][positions] < self.old_size)
            t_labels[row, :n] = torch.where(single, original[row][positions], torch.full_like(flat, -100))
        ce_positions = (span == 1) & (original < self.old_size)
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": t_labels,
            "owner": owner,
            "ce_positions": ce_positions[selected],
        }

    @staticmethod
    def pooled(teacher_hidden: torch.Tensor, owner: torch.Tensor, student_shape: torch.Size) -> torch.Tensor:
        """The teacher's states averaged over each student token's span: [batch, student length, hidden]."""
        b, t = student_shape[:2]
        h = teacher_hidden.shape[-1]
        keep = owner >= 0
        rows = torch.arange(b, device=owner.device)[:, None].expand_as(owner)[keep]
        index = rows * t + owner[keep]
        sums = torch.zeros(b * t, h, dtype=teacher_hidden.dtype, device=teacher_hidden.device)
        sums.index_add_(0, index, teacher_hidden[keep])
        counts = torch.zeros(b * t, dtype=teacher_hidden.dtype, device=teacher_hidden.device)
        counts.index_add_(0, index, torch.ones_like(index, dtype=teacher_hidden.dtype))
        return (sums / counts.clamp(min=1)[:, None]).view(b, t, h)
