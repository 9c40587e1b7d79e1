"""Opening caption files, with every way that can fail turned into a one-line ``DataError``.

Importers never see a raw ``OSError``, ``UnicodeDecodeError`` or ``JSONDecodeError``: a user who
points at the wrong file gets its name (and line, where there is one), never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from pipeline.errors import DataError
from pipeline.io import read_json


def require_file(path: Path) -> None:
    if not path.exists():
        raise DataError("file not found", path)
    if not path.is_file():
        raise DataError("is not a file (expected a caption file)", path)


def read_text(path: Path) -> str:
    """The whole file as text.

    Decoded in one piece rather than line by line so that a bad byte can be placed on its exact
    line, and so the csv module can still see quoted fields that span lines. A leading BOM (as
    spreadsheet programs write) is dropped so it cannot hide inside the first header name.
    """
    require_file(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read ({e.strerror})", path) from e
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(f"not UTF-8 text (byte {data[e.start]:#04x}); save the file as UTF-8", path, line) from e


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) for each non-blank line; blank lines carry nothing, so they are not errors."""
    for number, line in enumerate(read_text(path).split("\n"), 1):
        line = line.rstrip("\r")
        if line.strip():
            yield number, line


def read_json_file(path: Path) -> Any:
    require_file(path)
    try:
        return read_json(path)
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON ({e.msg}, column {e.colno})", path, e.lineno) from e
    except UnicodeDecodeError as e:
        raise DataError("not UTF-8 text; save the file as UTF-8", path) from e
    except OSError as e:
        raise DataError(f"cannot read ({e.strerror})", path) from e
