"""User-facing errors.

Anything a user can cause (bad file, wrong flag, mismatched cache) raises a subclass of
``CapcacheError`` with a one-line message saying what is wrong and what to do. The CLI prints
that line and exits non-zero; no traceback reaches the user for an input problem.
"""


class CapcacheError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class DataError(CapcacheError):
    """A dataset file is malformed or inconsistent; the message names the file and line."""

    def __init__(self, message: str, path: object = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line
