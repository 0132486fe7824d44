"""Readers of downstream datasets: each format, the odd cases, the splits, and the one-line errors."""

from __future__ import annotations

import csv
import io
import re

import pytest

from eliquare.errors import EliquareError
from eliquare.tasks.files import UPOS
from eliquare.tasks.readers import load_task_data
from eliquare.tasks.tables import read_table
from eliquare.tasks.tokens import read_bio, read_conllu, read_token_file, sniff_token_format


def conllu_line(i, form, upos, misc="_"):
    return f"{i}\t{form}\t{form.lower()}\t{upos}\t_\t_\t0\t_\t_\t{misc}"


CONLLU = "\n".join(
    [
        "# newdoc id = d1",
        "# sent_id = 1",
        "# text = Vlada dodeli.",
        conllu_line(1, "Vlada", "NOUN", "NER=B-org"),
        conllu_line(2, "dodeli", "VERB", "NER=O|SpaceAfter=No"),
        conllu_line(3, ".", "PUNCT", "NER=O"),
        "",
        "# sent_id = 2",
        "1-2\tdel\t_\t_\t_\t_\t_\t_\t_\t_",
        conllu_line(1, "de", "ADP", "NER=O"),
        conllu_line(2, "el", "DET", "NER=O"),
        "2.1\telided\telided\tVERB\t_\t_\t_\t_\t0:root\t_",
        conllu_line(3, "Ljubljana", "PROPN", "NER=B-loc"),
        "",
        "",
    ]
)


def test_conllu_upos_skips_ranges_and_empty_nodes(tmp_path):
    f = tmp_path / "a.conllu"
    f.write_text(CONLLU, encoding="utf-8")
    sents = read_conllu(f, "pos")
    assert [s.words for s in sents] == [["Vlada", "dodeli", "."], ["de", "el", "Ljubljana"]]
    assert [s.tags for s in sents] == [["NOUN", "VERB", "PUNCT"], ["ADP", "DET", "PROPN"]]
    assert sents[0].line == 4 and sents[1].line == 10
    assert sents[1].lines == [10, 11, 13]


def test_conllu_ner_from_misc(tmp_path):
    f = tmp_path / "a.conllu"
    f.write_text(CONLLU, encoding="utf-8")
    sents = read_conllu(f, "ner")
    assert [s.tags for s in sents] == [["B-org", "O", "O"], ["O", "O", "B-loc"]]


def test_conllu_wrong_number_of_columns_names_file_and_line(tmp_path):
    f = tmp_path / "bad.conllu"
    lines = CONLLU.splitlines()
    lines[4] = "2 dodeli dodeli VERB _ _ 0 _ _ _"  # spaces, not tabs
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(EliquareError) as e:
        read_conllu(f, "pos")
    msg = str(e.value)
    assert "\n" not in msg and str(f) in msg and "line 5" in msg and "10 tab-separated columns" in msg


def test_conllu_missing_ner_key(tmp_path):
    f = tmp_path / "x.conllu"
    f.write_text(conllu_line(1, "a", "X", "SpaceAfter=No") + "\n\n", encoding="utf-8")
    with pytest.raises(EliquareError, match=r"line 1: no NER= key"):
        read_conllu(f, "ner")


def test_empty_files_are_errors(tmp_path):
    for name, reader in (
        ("e.conllu", lambda p: read_conllu(p, "pos")),
        ("e.txt", lambda p: read_bio(p, "ner")),
        ("e.tsv", read_table),
    ):
        f = tmp_path / name
        f.write_text("\n\n", encoding="utf-8")
        with pytest.raises(EliquareError, match=re.escape(str(f))):
            reader(f)


@pytest.mark.parametrize(
    "name, words", [("e.conllu", "a non-empty CoNLL-U file"), ("e.bio", "a non-empty token-per-line file")]
)
def test_an_empty_token_file_is_named_by_its_format(name, words, tmp_path):
    """An empty .conllu (nothing to sniff the format from) is a CoNLL-U file, not a "token-per-line" one."""
    f = tmp_path / name
    f.write_text("\n\n", encoding="utf-8")
    with pytest.raises(EliquareError, match=words):
        read_token_file(f, "pos")


def test_bio_space_tab_and_index_column(tmp_path):
    space = tmp_path / "sw.txt"
    space.write_text("-DOCSTART- O\n\nWizara B-ORG\nya I-ORG\nafya O\n\n\nJana B-DATE\n", encoding="utf-8")
    s = read_bio(space)
    assert [x.words for x in s] == [["Wizara", "ya", "afya"], ["Jana"]]
    assert [x.tags for x in s] == [["B-ORG", "I-ORG", "O"], ["B-DATE"]]
    assert s[1].line == 8

    indexed = tmp_path / "wikineural.conllu"  # named .conllu, but idx<TAB>token<TAB>tag
    indexed.write_text("0\tNa\tO\n1\t1939\tO\n2\tNew York\tB-LOC\n\n0\tHij\tO\n", encoding="utf-8")
    assert sniff_token_format(indexed) == "bio"
    s = read_token_file(indexed, "ner")
    assert [x.words for x in s] == [["Na", "1939", "New York"], ["Hij"]]
    assert s[0].tags == ["O", "O", "B-LOC"]

    conll03 = tmp_path / "en.txt"  # token POS chunk tag: the tag is the last column
    conll03.write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n", encoding="utf-8")
    s = read_bio(conll03)
    assert s[0].words == ["EU", "rejects"] and s[0].tags == ["B-ORG", "O"]

    tokens_numbers = tmp_path / "num.txt"  # 2 columns whose first is a number: not an index
    tokens_numbers.write_text("1939 O\nLondon B-LOC\n", encoding="utf-8")
    assert read_bio(tokens_numbers)[0].words == ["1939", "London"]


def test_bio_errors(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_text("Wizara B-ORG\nya\n", encoding="utf-8")
    with pytest.raises(EliquareError, match=r"bad.txt, line 2: expected a token and a tag"):
        read_bio(f)
    f.write_text("Wizara B-ORG\nya ORGANISATION\n", encoding="utf-8")
    with pytest.raises(EliquareError, match=r"bad.txt, line 2: tag 'ORGANISATION' is not a BIO tag"):
        read_bio(f, "ner")
    assert read_bio(f, "pos")[0].tags == ["B-ORG", "ORGANISATION"]  # any tag set for POS


def test_table_tsv_without_header_label_first_and_last(tmp_path):
    f = tmp_path / "fr.tsv"
    f.write_text('1\tbon film .\n0\t"nul , "" le destin "" ose pire ."\n1\tsuper\n', encoding="utf-8")
    ex = read_table(f)  # label detected: the column with fewest distinct values
    assert [(e.label, e.text) for e in ex] == [
        ("1", "bon film ."),
        ("0", 'nul , " le destin " ose pire .'),
        ("1", "super"),
    ]
    assert [e.line for e in ex] == [1, 2, 3]
    g = tmp_path / "he.tsv"
    g.write_text("text one\t0\ntext two\t1\ntext three\t0\n", encoding="utf-8")
    ex = read_table(g, label_column="1", text_columns=["0"], header=False)
    assert [(e.label, e.text) for e in ex] == [("0", "text one"), ("1", "text two"), ("0", "text three")]


def test_table_tsv_quotes_that_are_text(tmp_path):
    """A TSV whose quotes break the csv quoting rules is read without quoting: every quote is kept as text (Amram
    et al.'s Hebrew comments hold fields such as `" " word " "`). A file that is quoted throughout is unquoted."""
    f = tmp_path / "he.tsv"
    f.write_text('" שלום "\t0\n" " חכמה " " "\t1\nטקסט\t0\n', encoding="utf-8")
    ex = read_table(f, label_column=1, text_columns=[0], header=False)
    assert [(e.label, e.text) for e in ex] == [("0", '" שלום "'), ("1", '" " חכמה " " "'), ("0", "טקסט")]
    assert [e.line for e in ex] == [1, 2, 3]
    g = tmp_path / "quoted.tsv"
    g.write_text('0\t"a ""b"" c"\n1\t"two\nlines"\n0\tplain\n', encoding="utf-8")
    assert [e.text for e in read_table(g, label_column=0, header=False)] == ['a "b" c', "two\nlines", "plain"]


def test_table_header_names_and_joined_text_columns(tmp_path):
    f = tmp_path / "sw.tsv"
    f.write_text(
        "category\theadline\ttext\turl\r\npolitics\tSpika mpya\tKiongozi wa chama.\thttps://x/1\r\n"
        "sports\tSimba\tMechi ya leo.\thttps://x/2\r\n",
        encoding="utf-8",
    )
    ex = read_table(f)  # header detected, label = category, text = headline + text (url left out)
    assert [(e.label, e.text) for e in ex] == [
        ("politics", "Spika mpya Kiongozi wa chama."),
        ("sports", "Simba Mechi ya leo."),
    ]
    assert ex[0].line == 2
    ex = read_table(f, label_column="category", text_columns=["text"])
    assert ex[1].text == "Mechi ya leo."
    hi = tmp_path / "hi.tsv"
    hi.write_text("Sentence\tTopic_Label\r\nएक मौका\t4\r\n", encoding="utf-8")
    assert read_table(hi, "Topic_Label", ["Sentence"])[0].label == "4"


def test_table_csv_quoted_and_jsonl(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text('label,text\npos,"good, very good"\nneg,"two\nlines"\nneg,bad\n', encoding="utf-8")
    ex = read_table(f)
    assert [(e.label, e.text) for e in ex] == [("pos", "good, very good"), ("neg", "two\nlines"), ("neg", "bad")]
    assert [e.line for e in ex] == [2, 3, 5]
    j = tmp_path / "d.jsonl"
    j.write_text(
        '{"text": "a b", "title": "T", "label": 1}\n\n{"text": "c", "title": "U", "label": 0}\n', encoding="utf-8"
    )
    ex = read_table(j, text_columns=["title", "text"])
    assert [(e.label, e.text, e.line) for e in ex] == [("1", "T a b", 1), ("0", "U c", 3)]


def test_table_errors_name_file_and_line(tmp_path):
    f = tmp_path / "d.tsv"
    f.write_text("label\ttext\npos\tgood\nneg\n", encoding="utf-8")
    with pytest.raises(EliquareError, match=r"d.tsv, line 3: the row has 1 column"):
        read_table(f)
    f.write_text("label\ttext\npos\tgood\n", encoding="utf-8")
    with pytest.raises(EliquareError) as e:
        read_table(f, label_column="sentiment")
    assert "line 1: no label column named 'sentiment' (columns: label, text)" in str(e.value)
    with pytest.raises(EliquareError, match=r"label column 5 does not exist"):
        read_table(f, label_column="5")
    f.write_text("label\ttext\n\tgood\n", encoding="utf-8")
    with pytest.raises(EliquareError, match=r"d.tsv, line 2: the label .* is empty"):
        read_table(f)
    j = tmp_path / "d.jsonl"
    j.write_text('{"label": 1, "text": "a"}\n{"label": 2, "text": \n', encoding="utf-8")
    with pytest.raises(EliquareError, match=r"d.jsonl, line 2: not valid JSON"):
        read_table(j)


def _bio_file(path, n, types=("PER", "LOC")):
    lines = []
    for i in range(n):
        t = types[i % len(types)]
        lines += [f"w{i} B-{t}", f"x{i} O", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def test_splits_dev_cut_and_one_file(tmp_path):
    train = _bio_file(tmp_path / "train.txt", 50)
    test = _bio_file(tmp_path / "test.txt", 10)
    d = load_task_data("ner", train, test=test)
    assert (len(d.train), len(d.dev), len(d.test)) == (45, 5, 10)
    assert d.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    again = load_task_data("ner", train, test=test)
    assert [e.line for e in again.dev] == [e.line for e in d.dev]  # deterministic
    one = load_task_data("ner", train)
    assert (len(one.train), len(one.dev), len(one.test)) == (40, 5, 5)
    lines = [e.line for e in one.train + one.dev + one.test]
    assert sorted(lines) == sorted(set(lines)) and len(lines) == 50  # disjoint, complete
    assert "80/10/10" in one.split
    with pytest.raises(EliquareError, match="--dev file was given without --test"):
        load_task_data("ner", train, dev=test)


def test_unknown_label_in_test_names_file_and_line(tmp_path):
    train = _bio_file(tmp_path / "train.txt", 20)
    test = tmp_path / "test.txt"
    test.write_text("a O\nb B-PER\n\nc B-DATE\n", encoding="utf-8")
    with pytest.raises(EliquareError) as e:
        load_task_data("ner", train, test=test)
    assert f"{test}, line 4: tag 'B-DATE' does not occur in the training data" in str(e.value)

    tr = tmp_path / "train.tsv"
    tr.write_text("pos\tgood\nneg\tbad\npos\tnice\n", encoding="utf-8")
    te = tmp_path / "test.tsv"
    te.write_text("pos\tgood\nneutral\tmeh\n", encoding="utf-8")
    with pytest.raises(EliquareError, match=r"test.tsv, line 2: label 'neutral' does not occur"):
        load_task_data("classify", tr, test=te, label_column="0", text_columns=["1"], header=False)


def test_conllu_pos_knows_every_upos_tag(tmp_path):
    train = tmp_path / "train.conllu"
    train.write_text(
        "\n".join(
            [conllu_line(1, "a", "NOUN"), "", conllu_line(1, "b", "VERB"), "", conllu_line(1, "c", "NOUN"), "", ""]
        ),
        encoding="utf-8",
    )
    test = tmp_path / "test.conllu"
    test.write_text(conllu_line(1, "d", "INTJ") + "\n\n", encoding="utf-8")  # a UPOS tag unseen in training
    d = load_task_data("pos", train, test=test)
    assert set(d.labels) == set(UPOS)
    test.write_text(conllu_line(1, "d", "NOUNN") + "\n\n", encoding="utf-8")
    with pytest.raises(EliquareError, match=r"test.conllu, line 1: tag 'NOUNN' does not occur"):
        load_task_data("pos", train, test=test)


def _documents_file(path, docs, marker="conllu"):
    """A NER file of several documents: ``docs`` maps a document id to its sentences, each a list of (word, tag)."""
    lines = []
    for doc, sentences in docs.items():
        lines.append(f"# newdoc id = {doc}" if marker == "conllu" else "-DOCSTART- O")
        lines.append("") if marker != "conllu" else None
        for sentence in sentences:
            for i, (word, tag) in enumerate(sentence, start=1):
                lines.append(
                    conllu_line(i, word, "PROPN" if word[:1].isupper() else "NOUN", f"NER={tag}")
                    if marker == "conllu"
                    else f"{word} {tag}"
                )
            lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


NAMED = [("v", "O"), ("Ljubljani", "B-loc"), ("je", "O"), ("Janez", "B-per"), ("Novak", "I-per")]
UNLABELLED = [("v", "O"), ("Mariboru", "O"), ("je", "O"), ("Ana", "O"), ("Kos", "O")]  # names left O


@pytest.mark.parametrize("marker", ["conllu", "bio"])
def test_annotated_documents_keeps_those_that_hold_an_entity(tmp_path, marker):
    """A corpus that annotates entities in only some documents: `documents="annotated"` keeps those, in every file,
    before the dev cut; the split says what was kept."""
    ext = "conllu" if marker == "conllu" else "txt"
    train = _documents_file(
        tmp_path / f"train.{ext}", {"a": [NAMED] * 6, "b": [UNLABELLED] * 10, "c": [NAMED] * 4}, marker
    )
    test = _documents_file(tmp_path / f"test.{ext}", {"t1": [UNLABELLED] * 8, "t2": [NAMED] * 3}, marker)
    whole = load_task_data("ner", train, test=test)
    assert len(whole.train) + len(whole.dev) == 20 and len(whole.test) == 11
    assert len(whole.notices) == 2 and "1 of 3 documents hold no entity" in whole.notices[0]
    assert "--documents annotated" in whole.notices[0] and "1 of 2 documents" in whole.notices[1]

    kept = load_task_data("ner", train, test=test, documents="annotated")
    assert len(kept.train) + len(kept.dev) == 10 and len(kept.test) == 3 and not kept.notices
    assert all("B-loc" in e.tags for e in kept.train + kept.dev + kept.test)
    assert {e.document for e in kept.train + kept.dev} == (
        {"a", "c"} if marker == "conllu" else {"document 1", "document 3"}
    )
    assert (
        "2 of 3 documents (10 of 20 sentences)" in kept.split and "1 of 2 documents (3 of 11 sentences)" in kept.split
    )


def test_no_notice_for_a_fully_annotated_file(tmp_path):
    """Documents without entities are no sign of partial annotation when they hold few capitalised words."""
    plain = [("v", "O"), ("mestu", "O"), ("je", "O"), ("lepo", "O")]
    f = _documents_file(tmp_path / "a.conllu", {"a": [NAMED] * 6, "b": [plain] * 10, "c": [NAMED] * 4})
    assert not load_task_data("ner", f).notices
    one = tmp_path / "one.txt"  # no document marks at all (MasakhaNER)
    one.write_text(
        "\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in [NAMED] * 5 + [UNLABELLED] * 20) + "\n",
        encoding="utf-8",
    )
    assert not load_task_data("ner", one).notices


def test_annotated_documents_refuses_what_it_cannot_do(tmp_path):
    f = _documents_file(tmp_path / "a.conllu", {"a": [NAMED] * 6, "b": [UNLABELLED] * 4})
    with pytest.raises(EliquareError, match="only --task ner has; drop it for --task pos"):
        load_task_data("pos", f, documents="annotated")
    with pytest.raises(EliquareError, match="unknown --documents 'some'"):
        load_task_data("ner", f, documents="some")
    bare = _documents_file(tmp_path / "b.conllu", {"a": [UNLABELLED] * 6, "b": [UNLABELLED] * 4})
    with pytest.raises(EliquareError, match=r"none of its 2 documents holds an entity"):
        load_task_data("ner", bare, documents="annotated")
    unmarked = tmp_path / "c.txt"
    unmarked.write_text("\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in [NAMED] * 5) + "\n", encoding="utf-8")
    with pytest.raises(EliquareError, match=r"marks no documents .* which --documents annotated needs"):
        load_task_data("ner", unmarked, documents="annotated")


@pytest.mark.realdata
def test_hebrew_sentiment_keeps_its_quotes(shared_data):
    """Amram et al.'s Hebrew comments are plain TSV: 2,877 of the 10,244 train texts hold a quote, kept as written,
    and no row swallows another. The French and Swahili TSVs are csv-quoted and still read unquoted."""
    path = shared_data / "he/sentiment/token_train.tsv"
    ex = read_table(path, label_column=1, text_columns=[0], header=False)
    raw = path.read_text(encoding="utf-8").splitlines()
    assert len(ex) == len(raw) == 10244
    assert [e.text for e in ex] == [line.rpartition("\t")[0].strip() for line in raw]
    assert sum('"' in e.text for e in ex) >= 2800
    for name, label, text in (("fr/sentiment/train.tsv", 0, 1), ("sw/news_classification/dev.tsv", 0, 2)):
        text_of_file = io.StringIO((shared_data / name).read_text(encoding="utf-8"), newline="")
        quoted = list(csv.reader(text_of_file, delimiter="\t"))
        ex = read_table(shared_data / name, label_column=label, text_columns=[text], header=name.startswith("sw"))
        assert [e.text for e in ex] == [row[text].strip() for row in quoted[name.startswith("sw") :]]


@pytest.mark.realdata
def test_slovene_ssj_ner_layer_covers_some_documents(shared_data):
    """UD Slovenian-SSJ's NER= layer annotates 14 of the dev file's 74 documents and 1 of the test file's 58; in the
    others every proper noun is O. The notice says so, and `documents="annotated"` keeps the annotated ones."""
    train, test = shared_data / "sl/ner/sl_ssj-ud-dev.conllu", shared_data / "sl/ner/sl_ssj-ud-test.conllu"
    whole = load_task_data("ner", train, test=test)
    assert len(whole.notices) == 2 and "60 of 74 documents hold no entity" in whole.notices[0]
    kept = load_task_data("ner", train, test=test, documents="annotated")
    assert len(kept.train) + len(kept.dev) == 408 and len(kept.test) == 256 and not kept.notices
    assert sum(t.startswith("B-") for e in kept.test for t in e.tags) == 187
