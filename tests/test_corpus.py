import bz2
import gzip
import json
import lzma
import re

import pytest
import tiny

from eliquare.corpus import CorpusStats, is_validation, iter_sentences, prepare_corpus, sentence_hash, split_sentences
from eliquare.corpus.prepare import HashSpill, _arrow_batches
from eliquare.errors import EliquareError

WIKI_DUMP = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="sw">
  <siteinfo>
    <sitename>Wikipedia</sitename>
    <dbname>swwiki</dbname>
    <namespaces>
      <namespace key="0" case="first-letter" />
      <namespace key="10" case="first-letter">Kigezo</namespace>
    </namespaces>
  </siteinfo>
  <page>
    <title>Nairobi</title>
    <ns>0</ns>
    <id>1</id>
    <revision>
      <id>11</id>
      <timestamp>2024-01-01T00:00:00Z</timestamp>
      <contributor><username>X</username><id>1</id></contributor>
      <model>wikitext</model>
      <format>text/x-wiki</format>
      <text xml:space="preserve">{{Infobox settlement|name=Nairobi|population=4397073}}
'''Nairobi''' ni [[mji mkuu]] wa [[Kenya|nchi ya Kenya]].&lt;ref&gt;{{cite web|url=http://x.org|title=Sensa}}&lt;/ref&gt; Mji huu una wakazi wengi sana.

== Historia ==
Mji ulianzishwa mwaka 1899 na wakoloni wa Uingereza.
[[Picha:Nairobi.jpg|thumb|Mji wa Nairobi]]
{| class="wikitable"
|-
| safu || ya jedwali
|}
[[Jamii:Miji ya Kenya]]
</text>
    </revision>
  </page>
  <page>
    <title>Nairobi City</title>
    <ns>0</ns>
    <id>2</id>
    <redirect title="Nairobi" />
    <revision>
      <id>12</id>
      <timestamp>2024-01-01T00:00:00Z</timestamp>
      <contributor><username>X</username><id>1</id></contributor>
      <model>wikitext</model>
      <format>text/x-wiki</format>
      <text xml:space="preserve">#REDIRECT [[Nairobi]] hii ni kurasa ya kuelekeza tu</text>
    </revision>
  </page>
  <page>
    <title>Kigezo:Kitu</title>
    <ns>10</ns>
    <id>3</id>
    <revision>
      <id>13</id>
      <timestamp>2024-01-01T00:00:00Z</timestamp>
      <contributor><username>X</username><id>1</id></contributor>
      <model>wikitext</model>
      <format>text/x-wiki</format>
      <text xml:space="preserve">Hiki ni kigezo ambacho si makala kabisa.</text>
    </revision>
  </page>
</mediawiki>
"""


def test_mediawiki_dump_to_clean_sentences(tmp_path):
    dump = tmp_path / "swwiki-20240101-pages-articles.xml.bz2"
    dump.write_bytes(bz2.compress(WIKI_DUMP.encode()))
    sentences = list(iter_sentences([dump]))
    assert sentences == [
        "Nairobi ni mji mkuu wa nchi ya Kenya.",
        "Mji huu una wakazi wengi sana.",
        "Mji ulianzishwa mwaka 1899 na wakoloni wa Uingereza.",
    ]


def test_compressed_files_and_directories(tmp_path):
    text = "Hii ni sentensi ya kwanza. Hii ni sentensi ya pili!\nMstari wa tatu una maneno.\n"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "d" / "b.xz").write_bytes(lzma.compress(text.encode()))
    (tmp_path / "c.bz2").write_bytes(bz2.compress(text.encode()))
    (tmp_path / "d" / ".hidden").write_text("Haitasomwa kamwe hii.")
    sentences = list(iter_sentences([tmp_path / "d", tmp_path / "c.bz2"]))
    assert sentences == ["Hii ni sentensi ya kwanza.", "Hii ni sentensi ya pili!", "Mstari wa tatu una maneno."] * 3


def test_conll_and_squad_json(tmp_path):
    conllu = tmp_path / "x.conllu"
    conllu.write_text(
        "# sent_id = 1\n1-2\tdel\t_\n1\tde\tde\n2\tle\tle\n3\tchat\tchat\n4\tdort\tdormir\n\n"
        "Le\tO\nchien\tO\naboie\tO\nfort\tO\n"
    )
    squad = tmp_path / "q.json"
    squad.write_text(
        json.dumps(
            {
                "data": [
                    {
                        "paragraphs": [
                            {"context": "Paragraphe un avec du texte. Deux ici aussi."},
                            {"context": "Paragraphe un avec du texte. Deux ici aussi."},
                        ]
                    }
                ]
            }
        )
    )
    assert list(iter_sentences([conllu, squad])) == [
        "de le chat dort",
        "Le chien aboie fort",
        "Paragraphe un avec du texte.",
        "Deux ici aussi.",
    ]


def test_filters_and_undecodable_lines(tmp_path):
    f = tmp_path / "mixed.txt"
    f.write_bytes(b"Sentensi nzuri ya kutosha.\nfupi\n" + b"\xff\xfe mbaya \xc3\x28 kabisa\n" + b"1234 5678 9999\n")
    stats = CorpusStats()
    assert list(iter_sentences([f], stats=stats)) == ["Sentensi nzuri ya kutosha."]
    assert stats.undecodable_lines == 1 and stats.too_short == 1


@pytest.mark.parametrize(
    "encoding, expect",
    [
        ("utf-16", "starts with a UTF-16 byte-order mark; convert it to UTF-8, e.g. iconv -f UTF-16 -t UTF-8"),
        ("utf-16-be", "of its first bytes are NUL \\(UTF-16 or UTF-32 text\\?\\); convert it to UTF-8"),
        ("utf-16-le", "of its first bytes are NUL"),
        ("utf-32", "starts with a UTF-32 byte-order mark"),
        ("latin-1", "200 of its first 200 lines do not decode; convert it to UTF-8, e.g. iconv -f LATIN1"),
        ("utf-16.gz", "starts with a UTF-16 byte-order mark; decompress it and convert it to UTF-8"),
    ],
)
def test_a_corpus_that_is_not_utf8_is_refused(encoding, expect, tmp_path):
    """Guards against: a UTF-16 file gave sentences such as "<unk>W<unk>a<unk>..." (ASCII in UTF-16 still decodes as UTF-8,
    NUL bytes and all), and a Latin-1 one "no sentences" without naming the file."""
    text = "".join(f"Mwalimu anasoma kitabu kizuri {i}, ñ señor, été.\n" for i in range(200))
    if encoding.endswith(".gz"):
        f = tmp_path / "corpus.txt.gz"
        f.write_bytes(gzip.compress(text.encode(encoding[:-3])))
    else:
        f = tmp_path / "corpus.txt"
        f.write_bytes(text.encode(encoding))
    with pytest.raises(EliquareError, match=f"corpus file {re.escape(str(f))} is not UTF-8: .*{expect}") as e:
        list(iter_sentences([f]))
    assert "\n" not in str(e.value)
    (tmp_path / "ok.txt").write_text(text, encoding="utf-8")  # the same text in UTF-8 reads
    assert len(list(iter_sentences([tmp_path / "ok.txt"]))) == 200


def test_sentence_splitting():
    assert split_sentences("Mr. A. Smith came home. He said: «Hi!» Then 3 cats came.") == [
        "Mr.",
        "A. Smith came home.",
        "He said: «Hi!»",
        "Then 3 cats came.",
    ]
    assert split_sentences("यह एक वाक्य है। यह दूसरा है।") == ["यह एक वाक्य है।", "यह दूसरा है।"]


def _wrapped(text: str, width: int) -> str:
    """``text`` broken at spaces into lines of at most ``width`` characters, as a terminal wraps it."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join([*lines, line]) + "\n"


def test_hard_wrapped_text_is_read_as_paragraphs(tmp_path):
    """A file that breaks running text at a fixed width gives whole sentences, not the pieces between line breaks;
    files of one sentence or paragraph per line are read line by line."""
    sentences = [f"Sentence number {i} has a few words and ends here." for i in range(60)]
    wrapped = tmp_path / "wrapped.txt"
    wrapped.write_text(_wrapped(" ".join(sentences[:30]), 70) + "\n" + _wrapped(" ".join(sentences[30:]), 70))
    assert max(len(line) for line in wrapped.read_text().splitlines()) <= 70
    stats = CorpusStats()
    assert list(iter_sentences([wrapped], stats=stats)) == sentences
    assert stats.lines == len(wrapped.read_text().splitlines())  # every line still counted
    per_line = tmp_path / "per-line.txt"
    # no stops, but lengths that differ as sentences do
    per_line.write_text("\n".join(f"{s[:-1]}{' and more' * (i % 5)}" for i, s in enumerate(sentences)) + "\n")
    assert len(list(iter_sentences([per_line]))) == 60
    short = tmp_path / "short.txt"  # too few lines to tell: read line by line
    short.write_text(_wrapped(" ".join(sentences[:3]), 40))
    lines = short.read_text().splitlines()
    assert all(any(s in line for line in lines) for s in iter_sentences([short]))


@pytest.mark.realdata
def test_wrapped_hebrew_htb_text_gives_its_sentences(shared_data):
    """UD Hebrew-HTB's raw train text is wrapped at about 80 characters (6,108 lines, no blank line): read as
    running text it gives about the treebank's 5,168 train sentences, nearly all ending with a stop. No other
    corpus file of ../shared/data is taken for wrapped text."""
    from eliquare.corpus.read import _head_lines, _plain_name, expand_paths, is_hard_wrapped

    htb = shared_data / "he/corpus/htb_raw/he_htb-ud-train.txt"
    stats = CorpusStats()
    sentences = list(iter_sentences([htb], stats=stats))
    assert stats.lines == 6108 and 5100 <= len(sentences) <= 5250
    assert sum(s[-1] in '.?!)"' for s in sentences) >= 0.99 * len(sentences)
    files = expand_paths(sorted(shared_data.glob("*/corpus")))
    plain = [f for f in files if not _plain_name(f).endswith((".json", ".conllu"))]
    assert [f for f in plain if is_hard_wrapped(_head_lines(f))] == [htb]


def test_prepare_split_dedup_and_cache(tmp_path, tiny_bert, corpus_file):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    doubled = tmp_path / "doubled.txt"
    lines = corpus_file.read_text().splitlines()
    doubled.write_text("\n".join(lines[:200] + lines + lines[200:]) + "\n")  # duplicates inside and at the end
    logs = []
    data = prepare_corpus([doubled], tok, cache_dir=tmp_path / "cache", log=logs.append)
    n = len(set(corpus_file.read_text().splitlines()))
    assert data.stats.duplicates == 2 * 400 - n
    assert len(data.train) + len(data.validation) == n
    assert 0.04 < len(data.validation) / n < 0.18  # 90:10 by hash
    # the split depends only on the sentence: the same sentences land on the same side every time
    val_texts = {tok.decode(x["input_ids"], skip_special_tokens=True) for x in data.validation}
    assert len(val_texts) == len(data.validation)
    assert data.token_counts.sum() == sum(data.train["length"])
    again = prepare_corpus([doubled], tok, cache_dir=tmp_path / "cache", log=logs.append)
    assert any("reusing" in m for m in logs) and again.fingerprint == data.fingerprint
    assert again.train["input_ids"] == data.train["input_ids"]
    # a changed corpus is a new cache entry
    doubled.write_text(corpus_file.read_text())
    third = prepare_corpus([doubled], tok, cache_dir=tmp_path / "cache", log=logs.append)
    assert third.fingerprint != data.fingerprint and third.stats.duplicates == 400 - n


def test_hash_spill_keeps_first_occurrences(tmp_path, monkeypatch):
    import random

    import numpy as np

    monkeypatch.setattr(HashSpill, "CHUNK", 37)  # many spills, duplicates across them
    rng = random.Random(0)
    pool = [sentence_hash(f"sentence {i}") for i in range(300)]
    hashes = [rng.choice(pool) for _ in range(1000)]
    spill = HashSpill(tmp_path / "spill")
    for h in hashes:
        spill.add(h)
    got = spill.splits(0.3)
    seen, expected = set(), []
    for h in hashes:
        expected.append(0 if h in seen else 2 if is_validation(h, 0.3) else 1)
        seen.add(h)
    assert got.tolist() == expected
    assert len(set(pool) & set(hashes)) == int((got > 0).sum()) and set(np.unique(got)) == {0, 1, 2}
    assert not list((tmp_path / "spill").glob("*.bin"))  # the buckets are removed as they are read


def test_prepare_counts_every_file(tmp_path, tiny_bert, monkeypatch):
    from transformers import AutoTokenizer

    monkeypatch.setattr(HashSpill, "CHUNK", 50)
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    lines = tiny.synthetic_sentences(300, seed=1)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.txt").write_text("\n".join(lines[:200]) + "\n")
    (tmp_path / "c" / "b.txt").write_text("\n".join(lines[100:]) + "\n")  # 100 lines repeat a.txt's
    data = prepare_corpus([tmp_path / "c"], tok, cache_dir=tmp_path / "cache", log=lambda m: None)
    distinct = len(set(lines))
    assert (data.stats.files, data.stats.lines) == (2, 400)
    assert data.stats.duplicates == 400 - distinct
    assert data.stats.train + data.stats.validation == distinct == len(data.train) + len(data.validation)
    first = prepare_corpus(
        [tmp_path / "c" / "a.txt", tmp_path / "c" / "b.txt"], tok, cache_dir=tmp_path / "cache2", log=lambda m: None
    )
    assert first.train["input_ids"] == data.train["input_ids"]  # a directory reads its files in name order

    # the tokenised files hold a few large record batches (small ones would cost RSS at load time)
    def record_batches(prepared):
        return sum(1 for _ in _arrow_batches(str(prepared.path / "train.arrow"), ["length"]))

    assert record_batches(data) == 1
    monkeypatch.setattr("eliquare.corpus.prepare.ARROW_BATCH", 40)  # tokenised 40 sentences at a time
    monkeypatch.setattr("eliquare.corpus.prepare.OUT_BATCH_TOKENS", 500)
    small = prepare_corpus([tmp_path / "c"], tok, cache_dir=tmp_path / "cache3", log=lambda m: None)
    assert record_batches(small) > 1 and small.train["input_ids"] == data.train["input_ids"]
    assert small.validation["length"] == data.validation["length"]


def test_hash_is_stable():
    assert sentence_hash("Habari ya asubuhi.") == sentence_hash("Habari ya asubuhi.")
    assert sentence_hash("Habari ya asubuhi.") != sentence_hash("Habari ya jioni.")


def test_empty_and_missing_corpus(tmp_path, tiny_bert):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\xfd\n\xc3\x28\n")  # opens with a UTF-16 byte-order mark
    with pytest.raises(EliquareError, match="bad.txt is not UTF-8: it starts with a UTF-16 byte-order mark"):
        prepare_corpus([bad], tok, cache_dir=tmp_path / "c")
    bad.write_bytes(b"\xfd abc\n\xc3\x28\n")
    with pytest.raises(EliquareError, match="bad.txt is not UTF-8: 2 of its first 2 lines do not decode"):
        prepare_corpus([bad], tok, cache_dir=tmp_path / "c")
    with pytest.raises(EliquareError, match="does not exist"):
        prepare_corpus([tmp_path / "nope.txt"], tok, cache_dir=tmp_path / "c")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EliquareError, match="holds no files"):
        list(iter_sentences([tmp_path / "empty"]))
