"""Creating, resuming and filling a cache file, one writer at a time.

A cache is created complete but empty under a temporary name and renamed into place, then filled
row by row. Rows whose ``status`` is not DONE are what a resumed run still has to do. A lock file
held with ``flock`` keeps a second writer out; the OS drops it if the writer dies, so a killed
extraction never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from pipeline.cache import hdf5
from pipeline.cache.key import CacheSpec
from pipeline.errors import CapcacheError
from pipeline.io import atomic_path
from pipeline.versions import library_versions


class CacheWriter:
    """Open (creating if needed) the cache at ``path`` for ``spec`` and hold its write lock."""

    def __init__(self, path: Path, spec: CacheSpec, image_ids: Sequence[str], n_tokens: int, dim: int):
        self.path = Path(path)
        self.spec = spec
        self._lock_file = _acquire_lock(self.path)
        try:
            if not self.path.exists():
                _create(self.path, spec, image_ids, n_tokens, dim)
            self._file = h5py.File(self.path, "r+")
            _check_spec(self._file, spec, self.path)
            self._features = self._file[hdf5.FEATURES]
            self._status = self._file[hdf5.STATUS]
        except BaseException:
            self._lock_file.close()
            raise

    def rows_to_do(self) -> np.ndarray:
        """Row indices not yet DONE (pending, or bad last time: a fixed file gets another chance)."""
        return np.flatnonzero(self._status[:] != hdf5.DONE)

    def write(self, rows: np.ndarray, features: np.ndarray) -> None:
        """Store features [b, L, D] for sorted ``rows``; status is set only once the data is out."""
        self._features[rows] = features.astype(self._features.dtype, copy=False)
        self._file.flush()
        self._status[rows] = hdf5.DONE
        self._file.flush()

    def status_array(self) -> np.ndarray:
        return self._status[:]

    def mark_bad(self, rows: np.ndarray) -> None:
        self._status[rows] = hdf5.BAD
        self._file.flush()

    def close(self) -> None:
        self._file.close()
        self._lock_file.close()

    def __enter__(self) -> "CacheWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _acquire_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(path.with_suffix(path.suffix + ".lock"), "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise CapcacheError(f"another process is writing {path}; wait for it to finish (or stop it) and run again") from None
    return lock


def _create(path: Path, spec: CacheSpec, image_ids: Sequence[str], n_tokens: int, dim: int) -> None:
    n = len(image_ids)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        hdf5.create_preallocated(f, hdf5.FEATURES, (n, n_tokens, dim), np.dtype(spec.dtype), (1, n_tokens, dim))
        hdf5.create_preallocated(f, hdf5.STATUS, (n,), np.dtype(np.uint8), (min(n, 1 << 16),))
        f.create_dataset(hdf5.IMAGE_IDS, data=np.array(image_ids, dtype=object), dtype=h5py.string_dtype())
        f.attrs[hdf5.ATTR_SPEC] = json.dumps(spec.to_dict(), sort_keys=True)
        f.attrs[hdf5.ATTR_KEY] = spec.key
        f.attrs[hdf5.ATTR_VERSIONS] = json.dumps(library_versions(), sort_keys=True)
        f.attrs[hdf5.ATTR_FORMAT] = hdf5.FORMAT_VERSION


def _check_spec(f: h5py.File, spec: CacheSpec, path: Path) -> None:
    stored = CacheSpec.from_dict(json.loads(f.attrs[hdf5.ATTR_SPEC]))
    if stored.key != spec.key:
        diff = "; ".join(stored.differences(spec))
        raise CapcacheError(f"{path} was built with other settings ({diff}); delete it or use another --cache-dir")

