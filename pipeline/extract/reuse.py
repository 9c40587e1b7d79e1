"""Telling that an extraction is already done without importing torch or building the encoder.

The full check (``runner``) builds the encoder, which alone knows its preprocessing and feature
size, and compares cache keys: seconds for large backbones (torch import, hundreds of MB of
weights). A finished cache's report therefore also lists the *requests* it has answered: digests
of the command's inputs (encoder name, weights as given, grid, dtype, the images by name, and
library versions, since another capcache or torchvision may build the same name differently).
The same request again is answered once the .h5 itself confirms it (``state``: its key, every row
written, no image file changed since); anything else goes through the full check, which then adds
its request to the report.
"""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np

from pipeline.augmentation import View
from pipeline.cache.key import digest, names_digest
from pipeline.cache.sidecar import read_sidecar, sidecar_path
from pipeline.cache.state import confirmed_complete
from pipeline.data.manifest import Manifest
from pipeline.extract.result import ExtractResult, bad_images
from pipeline.io import atomic_write_json
from pipeline.versions import library_versions


def request_digest(manifest: Manifest, encoder: str, weights: str | None, grid: int | None, dtype: str,
                   view: View | None = None) -> str:
    asked = {"encoder": encoder, "weights": weights_identity(weights), "grid": grid, "dtype": dtype,
             "images": names_digest(manifest), "versions": library_versions()}
    return digest({**asked, "view": view.to_dict()} if view is not None else asked)


def answered(cache_dir: str | Path, manifest: Manifest, encoder: str, request: str,
             stats: np.ndarray) -> ExtractResult | None:
    """The complete cache whose report lists ``request`` and whose file confirms it for the images'
    current ``stats`` [N, 2], as a reused result; None when there is none."""
    for path in sorted(Path(cache_dir).glob(f"{glob.escape(f'{encoder}-{manifest.name}-')}*.h5")):
        report = read_sidecar(path)
        if request in report.get("requests", []):
            bad_rows = confirmed_complete(path, report.get("key"), stats)
            if bad_rows is not None:
                return reused_result(path, report["key"], manifest, bad_rows)
    return None


def reused_result(path: Path, key: str, manifest: Manifest, bad_rows: np.ndarray) -> ExtractResult:
    """A complete cache as this request's result; its bad images with the errors its report keeps."""
    errors = {b.get("image_id"): b.get("error") for b in read_sidecar(path).get("bad", [])}
    bad = bad_images(manifest, {int(i): errors.get(manifest.images[i].image_id) or "could not be decoded"
                                for i in bad_rows})
    return ExtractResult(path, key, len(manifest.images), 0, bad, reused=True)


def record_request(path: Path, request: str, report: dict) -> None:
    """Add ``request`` to the report of the complete cache at ``path`` (``report`` when it has none of
    its own, e.g. deleted), so that it is answered fast next time."""
    stored = read_sidecar(path)
    if stored.get("key") == report["key"] and stored.get("complete"):
        if request in stored.get("requests", []):
            return
        report = {**stored, "requests": [*stored.get("requests", []), request]}
    try:
        atomic_write_json(sidecar_path(path), report)
    except OSError:  # a read-only (Kaggle input) or full folder: the full check answers each time
        pass


def weights_identity(weights: str | None) -> str | None:
    """Weights as asked for; a local file also by where it lies, its size and modification time, so that
    a replaced file is never answered from the report (the full check then decides)."""
    if weights is None:
        return None
    path = Path(weights).expanduser()
    if path.is_file():
        stat = path.stat()
        return f"file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return weights
