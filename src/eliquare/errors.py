"""The one exception type for bad input: the CLI prints its message on one line and exits 2."""


class EliquareError(Exception):
    """A problem with what the user gave us (a path, a model, a dataset, an option).

    The message names the problem and the fix, in one line; no traceback is shown for it.
    """


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (a library's error can run to pages), or its type's name."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def check_writable(out, option: str = "--out"):
    """Refuse an output directory that cannot be made, before anything slow starts: a file, a path under a file,
    or a place we may not write in (a probe file is created and removed in the nearest existing directory)."""
    import os
    import tempfile
    from pathlib import Path

    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise EliquareError(f"{option} {out} is a file; give a directory")
    where = out
    while not where.exists() and where != where.parent:
        where = where.parent
    if not where.is_dir():
        raise EliquareError(f"{option} {out} lies under {where}, which is a file; give a directory path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".eliquare-probe-", dir=where)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise EliquareError(
            f"{option} {out} cannot be written ({e.strerror or first_line(e)} in {where}); choose a "
            "directory you can write to"
        ) from None
    return out


def check_output_dir(out, overwrite: bool):
    """Refuse to write into a file or a non-empty directory unless --overwrite: nothing a user made is lost."""
    out = check_writable(out)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise EliquareError(f"--out {out} exists and is not empty; choose another directory or add --overwrite")
    return out


def notice(msg: str) -> None:
    """A notice line on stderr: something the user should know that does not stop the run."""
    import sys

    print(f"eliquare: notice: {msg}", file=sys.stderr, flush=True)
