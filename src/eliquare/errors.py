"""The one exception type for bad input: the CLI prints its message on one line and exits 2."""


class EliquareError(Exception):
    """A problem with what the user gave us (a path, a model, a dataset, an option).

    The message names the problem and the fix, in one line; no traceback is shown for it.
    """
