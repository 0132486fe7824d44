"""The house rule for bad input, as a test: exit code 2, one `eliquare: error:` line (the last), no traceback."""

from __future__ import annotations

import re


def assert_one_error(code: int, err: str, pattern: str) -> str:
    """Check what ``main([...])`` returned and printed on stderr; returns the error line."""
    lines = err.strip().splitlines()
    assert code == 2, err[-3000:]
    errors = [line for line in lines if line.startswith("eliquare: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], lines  # progress lines may come first; one error, last
    assert not any("Traceback" in line for line in lines), err[-3000:]
    assert re.search(pattern, errors[0]), errors[0]
    return errors[0]
