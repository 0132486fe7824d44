"""The token-per-line reader shared by the corpus stage and the evaluation readers."""

from __future__ import annotations

from eliquare.conll import is_node_id, read_sentences

CONLLU = """\
# newdoc id = d1
# sent_id = 1
# text = del Ljubljana
1-2\tdel\t_\t_\t_\t_\t_\t_\t_\t_
1\tde\tde\tADP\t_\t_\t3\tcase\t_\t_
2\tel\tel\tDET\t_\t_\t3\tdet\t_\t_
2.1\televa\televa\tVERB\t_\t_\t_\t_\t0:root\t_
3\tLjubljana\tLjubljana\tPROPN\t_\t_\t0\troot\t_\tSpaceAfter=No


# sent_id = 2
1\tDa\tda\tINTJ\t_\t_\t0\troot\t_\t_
1-2\tbroken range line
"""


def test_conllu_skips_comments_ranges_and_empty_nodes():
    sents = list(read_sentences(CONLLU.splitlines(), conllu=True))
    assert [[(n, cols[1]) for n, cols in s] for s in sents] == [
        [(5, "de"), (6, "el"), (8, "Ljubljana")],
        [(12, "Da"), (13, "broken range line")],  # a range without its 10 columns is left to the caller
    ]
    assert sents[0][2][1] == ["3", "Ljubljana", "Ljubljana", "PROPN", "_", "_", "0", "root", "_", "SpaceAfter=No"]
    words = [[cols[1] for _, cols in s] for s in read_sentences(CONLLU.splitlines())]  # leniently, as corpus does
    assert words == [["de", "el", "Ljubljana"], ["Da"]]
    assert is_node_id("1-2") and is_node_id("10.1") and not is_node_id("1") and not is_node_id("1-x")


def test_token_tag_bio_with_docstart():
    text = "-DOCSTART- O\n\nWizara B-ORG\nya\tI-ORG\n# O\n\n\nJana B-DATE\n-DOCSTART- O\n3.5 O\n"
    sents = list(read_sentences(text.splitlines(), comments=False, skip_nodes=False, docstart=True))
    assert sents == [
        [(3, ["Wizara", "B-ORG"]), (4, ["ya", "I-ORG"]), (5, ["#", "O"])],
        [(8, ["Jana", "B-DATE"])],
        [(10, ["3.5", "O"])],
    ]
    # the defaults read '#' as a comment and '3.5' as an empty node, and keep -DOCSTART- as a word
    assert [[c[0] for _, c in s] for s in read_sentences(text.splitlines())] == [
        ["-DOCSTART-"],
        ["Wizara", "ya"],
        ["Jana", "-DOCSTART-"],
    ]
