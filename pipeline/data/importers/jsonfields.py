"""Reading fields out of a JSON caption file, naming the entry and key when the shape is wrong.

Karpathy and COCO files are large nested JSON; a bare ``KeyError: 'raw'`` would not say which
file, which entry, or that the user most likely picked the wrong format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.data.importers.intake import fail
from pipeline.errors import DataError

ID = (int, str)  # ids are numbers in the published files; strings are accepted as written


def entries(data: Any, key: str, path: Path, what: str) -> list[dict]:
    """The list ``data[key]`` of JSON objects, or an error saying the file is not ``what``."""
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise DataError(f"not a {what} file: expected a JSON object whose {key!r} is a list", path)
    items = data[key]
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise fail(path, f"{key}[{i}]", f"expected a JSON object, got {type(item).__name__}")
    return items


def field(entry: dict, key: str, kind: type | tuple[type, ...], path: Path, where: str, required: bool = True) -> Any:
    """``entry[key]`` checked against ``kind``; ``None`` when absent and not required."""
    if key not in entry:
        if required:
            raise fail(path, where, f"missing {key!r}")
        return None
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, kind):  # bool is an int to isinstance, not an id
        kinds = kind if isinstance(kind, tuple) else (kind,)
        wanted = " or ".join(k.__name__ for k in kinds)
        raise fail(path, where, f"{key!r} should be {wanted}, got {type(value).__name__}")
    return value
