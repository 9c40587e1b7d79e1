"""Telling that an extraction is already done without importing torch or building the encoder.

The full check (``runner``) builds the encoder, which alone knows its preprocessing and feature
size, and compares cache keys: seconds for large backbones (torch import, hundreds of MB of
weights). A finished cache's report therefore also lists the *requests* it has answered: digests
of the command's inputs (encoder name, weights as given, grid, dtype, the images by content, and
library versions, since another capcache or torchvision may build the same name differently).
The same request again is answered from the report alone; any other goes through the full check,
which then adds its request to the report.
"""

from __future__ import annotations

import glob
from pathlib import Path

from pipeline.cache.key import digest, image_digests
from pipeline.cache.sidecar import read_sidecar, sidecar_path
from pipeline.data.manifest import Manifest
from pipeline.extract.result import ExtractResult
from pipeline.io import atomic_write_json
from pipeline.versions import library_versions


def request_digest(manifest: Manifest, encoder: str, weights: str | None, grid: int | None, dtype: str) -> str:
    image_set, _ = image_digests(manifest)
    return digest({"encoder": encoder, "weights": _weights_identity(weights), "grid": grid, "dtype": dtype,
                   "image_set": image_set, "versions": library_versions()})


def answered(cache_dir: str | Path, manifest: Manifest, encoder: str, request: str) -> ExtractResult | None:
    """The complete cache whose report lists ``request``, as a reused result; None when there is none."""
    for path in sorted(Path(cache_dir).glob(f"{glob.escape(f'{encoder}-{manifest.name}-')}*.h5")):
        report = finished_report(path)
        if report is not None and request in report.get("requests", []):
            return ExtractResult(path, report["key"], report["n_images"], 0, report.get("bad", []), reused=True)
    return None


def finished_report(path: Path) -> dict | None:
    """The sidecar report of a complete cache at ``path``; None when there is work to do (or no usable
    report: the full check then decides, and rewrites it after extracting)."""
    report = read_sidecar(path) if path.exists() else {}
    return report if report.get("complete") else None


def record_request(path: Path, request: str) -> None:
    """Add ``request`` to the report of the complete cache at ``path``, so that it is answered fast next time."""
    report = finished_report(path)
    if report is not None and request not in report.get("requests", []):
        try:
            atomic_write_json(sidecar_path(path), {**report, "requests": [*report.get("requests", []), request]})
        except OSError:  # a read-only cache folder (e.g. a Kaggle input dataset): the full check answers each time
            pass


def _weights_identity(weights: str | None) -> str | None:
    """Weights as asked for; a local file also by where it lies, its size and modification time, so that
    a replaced file is never answered from the report (the full check then decides)."""
    if weights is None:
        return None
    path = Path(weights).expanduser()
    if path.is_file():
        stat = path.stat()
        return f"file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return weights
