"""Small facts remembered between runs in ``$CAPCACHE_HOME`` (default ~/.cache/capcache).

Each memo is one JSON file of {key: value}. A memo that cannot be read or written (a read-only
home, a damaged file) only means computing the fact again, never an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.io import atomic_write_json, read_json


def memo_path(name: str) -> Path:
    return Path(os.environ.get("CAPCACHE_HOME", "~/.cache/capcache")).expanduser() / f"{name}.json"


def recall(name: str, key: str) -> Any | None:
    """The value remembered under ``key`` in memo ``name``; None when there is none."""
    memo = _read(name)
    return memo.get(key)


def remember(name: str, key: str, value: Any) -> None:
    try:
        atomic_write_json(memo_path(name), {**_read(name), key: value})
    except OSError:
        pass


def _read(name: str) -> dict:
    try:
        memo = read_json(memo_path(name))
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}
