"""Creating, resuming and filling a cache file, one writer at a time.

A cache is created complete but empty under a temporary name and renamed into place, then filled
row by row. Rows whose ``status`` is not DONE are what a resumed run still has to do. A lock file
held with ``flock`` keeps a second writer out; the OS drops it if the writer dies, so a killed
extraction never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import shutil
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import h5py
import numpy as np

from pipeline.cache import hdf5
from pipeline.cache.key import CacheSpec
from pipeline.errors import CapcacheError
from pipeline.io import atomic_path
from pipeline.versions import library_versions


class CacheWriter:
    """Open (creating if needed) the cache at ``path`` for ``spec`` and hold its write lock."""

    def __init__(self, path: Path, spec: CacheSpec, image_ids: Sequence[str], n_tokens: int, dim: int,
                 pooled_dim: int | None = None):
        self.path = Path(path)
        self.spec = spec
        self._lock_file = _acquire_lock(self.path)
        try:
            with storage_errors(self.path):
                if not self.path.exists():
                    _check_free_space(self.path, hdf5.estimated_bytes(len(image_ids), n_tokens, dim, pooled_dim, spec.dtype))
                    _create(self.path, spec, image_ids, n_tokens, dim, pooled_dim)
                self._file = _open_for_writing(self.path)
            _check_spec(self._file, spec, self.path)
            self._features = self._file[hdf5.FEATURES]
            self._pooled = self._file.get(hdf5.POOLED)
            self._status = self._file[hdf5.STATUS]
        except BaseException:
            self._lock_file.close()
            raise

    def rows_to_do(self) -> np.ndarray:
        """Row indices not yet DONE (pending, or bad last time: a fixed file gets another chance)."""
        return np.flatnonzero(self._status[:] != hdf5.DONE)

    def write(self, rows: np.ndarray, features: np.ndarray, pooled: np.ndarray | None = None) -> None:
        """Store features [b, L, D] (and pooled [b, E]) for sorted ``rows``; status is set only once the data is out."""
        with storage_errors(self.path):
            self._features[rows] = features.astype(self._features.dtype, copy=False)
            if self._pooled is not None:
                self._pooled[rows] = pooled.astype(self._pooled.dtype, copy=False)
            self._file.flush()
            self._status[rows] = hdf5.DONE
            self._file.flush()

    def status_array(self) -> np.ndarray:
        return self._status[:]

    def mark_bad(self, rows: np.ndarray) -> None:
        with storage_errors(self.path):
            self._status[rows] = hdf5.BAD
            self._file.flush()

    def close(self) -> None:
        self._file.close()
        self._lock_file.close()

    def __enter__(self) -> "CacheWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def storage_errors(path: Path) -> Iterator[None]:
    """Disk full, permission denied, read-only filesystem: one line saying what to do, and since
    finished rows are already marked DONE, the same command resumes once the cause is fixed."""
    try:
        yield
    except OSError as e:
        code = e.errno or _errno_in_message(str(e))
        if code == errno.ENOSPC:
            raise CapcacheError(f"disk full while writing {path}; free space (or use --cache-dir on a larger disk) "
                                "and run the same command again to resume") from e
        if code in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise CapcacheError(f"no permission to write {path} ({e.strerror or e}); choose a writable --cache-dir "
                                "(on Kaggle: /kaggle/working/cache)") from e
        raise CapcacheError(f"cannot write {path}: {e.strerror or e}; check --cache-dir, then run again to resume") from e


def _errno_in_message(message: str) -> int | None:
    """h5py reports some OS failures as OSError without errno, naming it only in the text."""
    for code, words in ((errno.ENOSPC, "No space left"), (errno.EACCES, "Permission denied"),
                        (errno.EROFS, "Read-only file system")):
        if words in message:
            return code
    return None


def _check_free_space(path: Path, needed: int) -> None:
    free = shutil.disk_usage(path.parent).free
    if free < needed:
        raise CapcacheError(f"{path.name} needs {needed / 2**30:.2f} GiB but only {free / 2**30:.2f} GiB is free in "
                            f"{path.parent}; free space or pass --cache-dir on a larger disk")


def _acquire_lock(path: Path):
    with storage_errors(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_suffix(path.suffix + ".lock"), "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise CapcacheError(f"another process is writing {path}; wait for it to finish (or stop it) and run again") from None
    except OSError as e:  # a file system without locks (some NFS and FUSE mounts): go on, unguarded
        if e.errno not in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
        warnings.warn(f"{path.parent} does not support file locks; make sure no other extraction writes {path.name}",
                      stacklevel=3)
    return lock


def _open_for_writing(path: Path) -> h5py.File:
    try:
        return hdf5.open_file(path, "r+")
    except OSError as e:
        raise hdf5.lock_error(path, e, writing=True) or e  # the others: storage_errors says what to do


def _create(path: Path, spec: CacheSpec, image_ids: Sequence[str], n_tokens: int, dim: int,
            pooled_dim: int | None) -> None:
    n = len(image_ids)
    with atomic_path(path) as tmp, hdf5.open_file(tmp, "w") as f:
        hdf5.create_preallocated(f, hdf5.FEATURES, (n, n_tokens, dim), np.dtype(spec.dtype), (1, n_tokens, dim))
        if pooled_dim:
            hdf5.create_preallocated(f, hdf5.POOLED, (n, pooled_dim), np.dtype(spec.dtype), (min(n, 1024), pooled_dim))
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

