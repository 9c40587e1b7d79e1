"""The JSON report an extraction writes beside its cache file (``<cache>.json``).

It says whether the cache is complete, which images were bad and why, and which extract requests
it has answered (see ``pipeline.extract.reuse``). Anyone may read it; a missing or damaged report
reads as empty, and the next extraction of that cache writes it anew.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.io import read_json


def sidecar_path(cache: Path) -> Path:
    return Path(cache).with_suffix(".json")


def read_sidecar(cache: Path) -> dict:
    """The report beside ``cache``; {} when there is none or it cannot be read."""
    path = sidecar_path(cache)
    try:
        report = read_json(path) if path.exists() else {}
    except (OSError, ValueError):
        return {}
    return report if isinstance(report, dict) else {}
