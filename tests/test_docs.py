"""The README stays a short front page that holds the two set-up commands, and the commands that it and the pages
of docs/ give run as written: every flag of an `eliquare VERB` command in a fenced shell block is an option of that
verb (its `--help`). Nothing here trains or loads a model: `--help` of every verb takes well under a second."""

from __future__ import annotations

import contextlib
import functools
import io
import re
import shlex
from pathlib import Path

import pytest

from eliquare.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOC_FILES = [README, *sorted((ROOT / "docs").glob("*.md"))]
MAX_README_BYTES = 10 * 1024

# The README's two commands, character for character: the main job and the test suite (what .ci/run runs).
MAIN_JOB = (
    "bash scripts/bootstrap && .venv/bin/eliquare distill --corpus ../shared/data/sw/corpus --out runs/sw-student \\\n"
    "    --vocab-reduce pre --max-steps 40 --warmup-ratio 0.1 --gradient-accumulation 2 --eval-steps 10 \\\n"
    "    --max-length 64 --validation-fraction 0.02\n"
)
TEST_COMMAND = "bash scripts/bootstrap && .venv/bin/python -m pytest -q\n"

SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
SEPARATORS = {"&&", "||", "|", ";"}


def shell_blocks(text: str) -> list[str]:
    """The fenced shell blocks of a Markdown text, unindented (a block inside a list item is indented)."""
    blocks = []
    for m in FENCE.finditer(text):
        if m.group("lang") in SHELL_LANGUAGES:
            indent = len(m.group("indent"))
            blocks.append("".join(line[indent:] for line in m.group("body").splitlines(keepends=True)))
    return blocks


def commands(block: str) -> list[list[str]]:
    """Each command of a shell block as its words: continuation lines joined, comments dropped, split at
    `&&`, `||`, `|` and `;`."""
    found = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        current: list[str] = []
        for word in words + [";"]:
            if word in SEPARATORS:
                if current:
                    found.append(current)
                current = []
            else:
                current.append(word)
    return found


@functools.cache
def verb_help(verb: tuple[str, ...]) -> tuple[int, str]:
    """Exit status and output of `eliquare VERB --help`, run in this process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        status = main([*verb, "--help"])
    return status, out.getvalue()


def options_of(help_text: str) -> set[str]:
    """The options a verb takes: every `--flag` of its usage lines (argparse lists each option there)."""
    usage = help_text.split("\n\n", 1)[0]
    return set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", usage)) | {"--help"}


def eliquare_invocations(words: list[str]) -> tuple[tuple[str, ...], list[str]] | None:
    """(verb, flags) of a command that runs eliquare (`eliquare`, `.venv/bin/eliquare`, `python -m eliquare`),
    or None for any other command."""
    starts = [i for i, w in enumerate(words) if w == "eliquare" or w.endswith("/eliquare")]
    if not starts or starts[0] + 1 >= len(words):
        return None
    rest = words[starts[0] + 1 :]
    if rest[0].startswith("-"):  # `eliquare --version`, `eliquare --help`: no verb
        return None
    verb = (rest[0],)
    status, text = verb_help(verb)
    if status == 0 and options_of(text) == {"--help"} and len(rest) > 1:  # a group: `teacher export`, `vocab amp`
        verb = (rest[0], rest[1])
    flags = [w.split("=", 1)[0] for w in rest[len(verb) :] if w.startswith("--")]
    return verb, flags


def test_readme_is_a_short_front_page():
    size = README.stat().st_size
    assert size <= MAX_README_BYTES, f"README.md is {size} bytes; move detail into docs/ (at most {MAX_README_BYTES})"


def test_readme_setup_block_holds_the_two_commands():
    text = README.read_text(encoding="utf-8")
    setup = re.search(r"^## Set-up.*?(?=^## )", text, re.M | re.S)
    assert setup, "README.md has no '## Set-up' section"
    blocks = shell_blocks(setup.group(0))
    assert any(MAIN_JOB in b for b in blocks), "the main job's command is not in the README's set-up block as written"
    assert any(TEST_COMMAND in b.splitlines(keepends=True) for b in blocks), (
        "the test command is not in the set-up block"
    )


def test_readme_links_exist():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    missing = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


@pytest.mark.parametrize("path", DOC_FILES, ids=[p.relative_to(ROOT).as_posix() for p in DOC_FILES])
def test_every_flag_of_the_documented_commands_exists(path: Path):
    unknown = []
    for block in shell_blocks(path.read_text(encoding="utf-8")):
        for words in commands(block):
            found = eliquare_invocations(words)
            if found is None:
                continue
            verb, flags = found
            status, text = verb_help(verb)
            if status != 0:
                unknown.append(f"eliquare {' '.join(verb)} (no such verb)")
                continue
            unknown += [f"eliquare {' '.join(verb)} {flag}" for flag in flags if flag not in options_of(text)]
    assert not unknown, f"{path.name} names options that `eliquare VERB --help` does not list: {unknown}"


def test_the_main_job_is_checked():
    """The flag check sees the main job's command as `eliquare distill` with its nine options."""
    [words] = [w for w in commands(MAIN_JOB) if "pytest" not in w and "scripts/bootstrap" not in w]
    verb, flags = eliquare_invocations(words)
    assert verb == ("distill",)
    assert flags == [
        "--corpus",
        "--out",
        "--vocab-reduce",
        "--max-steps",
        "--warmup-ratio",
        "--gradient-accumulation",
        "--eval-steps",
        "--max-length",
        "--validation-fraction",
    ]
    assert set(flags) <= options_of(verb_help(verb)[1])
