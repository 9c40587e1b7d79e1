"""Creating, resuming and filling a cache file, one writer at a time.

A cache is created complete but empty under a temporary name and renamed into place, then filled
row by row. Rows whose ``status`` is not DONE are what a resumed run still has to do. The write
lock (``lock``) keeps a second writer out and dies with the writer, so a killed extraction never
leaves a stale lock behind. Creating a cache first removes the report of any earlier file of that
name, so a report can never vouch for a file it was not written about, and deletes temporaries
that killed runs left in the folder.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from pathlib import Path
from typing import Iterator, Sequence

import h5py
import numpy as np

from pipeline.cache import hdf5
from pipeline.cache.compute import agree, describe, how_to_match, stored_compute
from pipeline.cache.contents import MISSING
from pipeline.cache.key import CacheSpec
from pipeline.cache.lock import WriteLock
from pipeline.cache.row_runs import read_rows, write_rows
from pipeline.cache.sidecar import sidecar_path
from pipeline.errors import CapcacheError
from pipeline.io import atomic_path, remove_orphaned_temporaries
from pipeline.versions import library_versions


class CacheWriter:
    """Open (creating if needed) the cache at ``path`` for ``spec`` and hold its write lock.

    ``files`` (relative to ``image_root``) and ``compute`` (how the features are computed, e.g.
    {"device": "cpu", "precision": "float32", "batch_size": 8}: ``pipeline.cache.compute``) are
    recorded when the file is created.
    """

    def __init__(self, path: Path, spec: CacheSpec, image_ids: Sequence[str], n_tokens: int, dim: int,
                 pooled_dim: int | None = None, files: Sequence[str] | None = None, image_root: str = "",
                 compute: dict | None = None):
        self.path = Path(path)
        self.spec = spec
        with storage_errors(self.path.parent):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = WriteLock(self.path)
        try:
            if not self.path.exists():
                names = list(image_ids) + list(files or [])
                needed = hdf5.estimated_bytes(len(image_ids), n_tokens, dim, pooled_dim, spec.dtype,
                                              sum(len(s.encode()) for s in names))
                with storage_errors(self.path, needed):
                    remove_orphaned_temporaries(self.path.parent)
                    _check_free_space(self.path, needed)
                    _create(self.path, spec, image_ids, files or image_ids, image_root, compute or {},
                            n_tokens, dim, pooled_dim)
            with storage_errors(self.path):
                self._file = _open_for_writing(self.path)
            _check_spec(self._file, spec, self.path)
            self._features = self._file[hdf5.FEATURES]
            self._pooled = self._file.get(hdf5.POOLED)
            self._status = self._file[hdf5.STATUS]
            self._digests, self._stats = self._file[hdf5.DIGESTS], self._file[hdf5.STATS]
            self._checksums = self._file[hdf5.CHECKSUMS]
        except BaseException:
            self._lock.release()
            raise

    @property
    def feature_shape(self) -> tuple[int, int]:
        """(L, D) of each row's features in the file."""
        return tuple(self._features.shape[1:])

    def rows_to_do(self) -> np.ndarray:
        """Row indices not yet DONE (pending, or bad last time: a fixed file gets another chance)."""
        return np.flatnonzero(self._status[:] != hdf5.DONE)

    def stored_stats(self) -> np.ndarray:  # [N, 2] (size, mtime_ns) of each file when its row was written
        return self._stats[:]

    def stored_digests(self) -> list[str]:  # [N] content digest of each file when its row was written
        return [d.decode() for d in self._digests[:]]

    def refuse_mixing(self, compute: dict) -> None:
        """Refuse to add rows computed otherwise (fp16 on CUDA, fp32 on CPU, another batch size) to
        rows already written (``pipeline.cache.compute``)."""
        stored = stored_compute(self._file.attrs)
        if not agree(stored, compute) and (self._status[:] == hdf5.DONE).any():
            raise CapcacheError(f"{self.path} was started on {describe(stored)}, this run computes on "
                                f"{describe(compute)}; finish it with {how_to_match(stored, compute)}, or delete it "
                                "to start over")

    def write(self, rows: np.ndarray, features: np.ndarray, pooled: np.ndarray | None = None,
              digests: Sequence[str] | None = None, stats: np.ndarray | None = None) -> None:
        """Store features [b, L, D] (and pooled [b, E]) for sorted ``rows``, with their files' digests
        and stats [b, 2]; status is set only once the data is out."""
        features = features.astype(self._features.dtype, copy=False)
        pooled = pooled.astype(self._pooled.dtype, copy=False) if self._pooled is not None else None
        with storage_errors(self.path):
            write_rows(self._features, rows, features)
            if pooled is not None:
                write_rows(self._pooled, rows, pooled)
            if digests is not None:
                write_rows(self._digests, rows, np.array(digests, dtype=hdf5.DIGEST_DTYPE))
            write_rows(self._stats, rows, stats if stats is not None else MISSING)
            write_rows(self._checksums, rows, hdf5.row_checksums(features, pooled))
            self._file.flush()
            write_rows(self._status, rows, hdf5.DONE)
            self._file.flush()

    def copy_rows_from(self, source: Path, block: int = 256) -> int:
        """Fill pending rows from ``source``, a cache of the same settings over other images; returns
        how many were copied.

        A row is copied when its image id and file match a DONE row of ``source`` whose checksum
        still holds. Its file digest and stats come with it, so the change check that follows
        treats it like a row written here: a file edited since is hashed and redone.
        """
        ids, files = _names(self._file)
        with hdf5.open_for_reading(source) as f:
            their_ids, their_files = _names(f)
            done = f[hdf5.STATUS][:] == hdf5.DONE
            there = {(i, name): r for r, (i, name) in enumerate(zip(their_ids, their_files)) if done[r]}
            pairs = sorted((there[(ids[r], files[r])], int(r)) for r in self.rows_to_do() if (ids[r], files[r]) in there)
            return self._copy_pairs(f, pairs, block)

    def copy_slice_from(self, source: Path, start: int, block: int = 256) -> int:
        """Fill pending rows from rows ``start``... of ``source``, a cache of the same images in the same
        order (this file is its slice from ``start``: a part taking over an interrupted one-file run);
        returns how many were copied. Rows are checked like ``copy_rows_from``'s."""
        todo = self.rows_to_do()
        with hdf5.open_for_reading(source) as f:
            done = f[hdf5.STATUS][start:start + len(self._status)] == hdf5.DONE
            return self._copy_pairs(f, [(start + int(r), int(r)) for r in todo if done[r]], block)

    def _copy_pairs(self, f: h5py.File, pairs: list[tuple[int, int]], block: int) -> int:
        """Copy rows (source row of ``f``, row here), sorted by source row, whose checksum still holds."""
        pooled_ds = f.get(hdf5.POOLED)
        copied = 0
        for start in range(0, len(pairs), block):
            src, dst = map(np.array, zip(*pairs[start:start + block]))  # src increasing, dst any order
            features = read_rows(f[hdf5.FEATURES], src)  # [b, L, D]
            pooled = read_rows(pooled_ds, src) if pooled_ds is not None else None  # [b, E]
            intact = hdf5.row_checksums(features, pooled) == read_rows(f[hdf5.CHECKSUMS], src)  # [b]
            order = np.argsort(dst)
            order = order[intact[order]]  # rows are written in increasing order
            digests = [d.decode() for d in read_rows(f[hdf5.DIGESTS], src)[order]]
            self.write(dst[order], features[order], pooled[order] if pooled is not None else None,
                       digests, read_rows(f[hdf5.STATS], src)[order])
            copied += len(order)
        return copied

    def status_array(self) -> np.ndarray:
        return self._status[:]

    def mark_bad(self, rows: np.ndarray, stats: np.ndarray | None = None) -> None:
        with storage_errors(self.path):
            write_rows(self._stats, rows, stats if stats is not None else MISSING)
            write_rows(self._status, rows, hdf5.BAD)
            self._file.flush()

    def mark_pending(self, rows: np.ndarray) -> None:
        """Rows to extract again (their image changed): pending before anything is overwritten."""
        with storage_errors(self.path):
            write_rows(self._status, rows, hdf5.PENDING)
            self._file.flush()

    def update_stats(self, rows: np.ndarray, stats: np.ndarray) -> None:
        """New stats [b, 2] for rows whose file moved or was touched but kept its content."""
        with storage_errors(self.path):
            write_rows(self._stats, rows, stats)
            self._file.flush()

    def record_image_set(self, image_set: str) -> None:
        """Record the image set (names and sizes) the rows now hold, once they are all written."""
        stored = json.loads(self._file.attrs[hdf5.ATTR_SPEC])
        if stored["image_set"] != image_set:
            with storage_errors(self.path):
                self._file.attrs[hdf5.ATTR_SPEC] = json.dumps({**stored, "image_set": image_set}, sort_keys=True)
                self._file.flush()

    def inherited_handles(self) -> tuple[tuple[int, int, int], ...]:
        """(fd, device, inode) of the open cache file, for ``close_inherited`` in forked workers."""
        fd = self._file.id.get_vfd_handle()
        st = os.fstat(fd)
        return ((fd, st.st_dev, st.st_ino),)

    def close(self) -> None:
        self._file.close()
        self._lock.release()

    def __enter__(self) -> "CacheWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def reopen_rows(path: Path, rows: np.ndarray) -> None:
    """Mark ``rows`` pending under the write lock (`cache verify --repair`), for the next extract to redo."""
    lock = WriteLock(path)
    try:
        with storage_errors(path), _open_for_writing(path) as f:
            write_rows(f[hdf5.STATUS], np.unique(rows), hdf5.PENDING)
    finally:
        lock.release()


def close_inherited(handles: tuple[tuple[int, int, int], ...], worker_id: int = 0) -> None:
    """DataLoader ``worker_init_fn``: close the descriptors of the cache a forked worker inherited.

    HDF5 locks the file with ``flock``, which a forked child shares: an orphaned worker of a writer
    killed with -9 would keep the cache locked until it notices its parent is gone. A descriptor is
    closed only if it still is that file (a spawned worker has other descriptors under those numbers).
    """
    for fd, dev, ino in handles:
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) == (dev, ino):
                os.close(fd)
        except OSError:
            continue


@contextlib.contextmanager
def storage_errors(path: Path, needed: int = 0) -> Iterator[None]:
    """Disk full, permission denied, read-only filesystem: one line saying what to do, and since
    finished rows are already marked DONE, the same command resumes once the cause is fixed.

    h5py reports a failed write as ``OSError``, ``RuntimeError`` or even ``ValueError`` (a full disk
    while creating the file), often without errno, naming the cause only in its text.
    ``needed`` is what the operation needs in bytes, to say how much to free.
    """
    try:
        yield
    except (OSError, RuntimeError, ValueError) as e:
        code = getattr(e, "errno", None) or _errno_in_message(str(e))
        if code in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full(path, needed) from e
        if code in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise CapcacheError(f"no permission to write {path} ({getattr(e, 'strerror', None) or e}); choose a "
                                "writable --cache-dir (on Kaggle: /kaggle/working/cache)") from e
        if isinstance(e, ValueError):  # not a storage failure
            raise
        text = getattr(e, "strerror", None) or " ".join(str(e).split())[:200]
        raise CapcacheError(f"cannot write {path}: {text}; check --cache-dir, then run again to resume") from e


def disk_full(path: Path, needed: int = 0) -> CapcacheError:
    folder = path if path.is_dir() else path.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = 0
    return CapcacheError(f"disk full at {path}; free {_size(max(needed - free, 1 << 20))} "
                         "(or use --cache-dir on a larger disk) and re-run (it resumes)")


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _errno_in_message(message: str) -> int | None:
    """h5py reports some OS failures without errno, naming it only in the text."""
    for code, words in ((errno.ENOSPC, "No space left"), (errno.ENOSPC, "errno = 28"),
                        (errno.EACCES, "Permission denied"), (errno.EROFS, "Read-only file system")):
        if words in message:
            return code
    return None


def _check_free_space(path: Path, needed: int) -> None:
    free = shutil.disk_usage(path.parent).free
    if free < needed:
        raise CapcacheError(f"disk full at {path.parent}: {path.name} needs {_size(needed)} but only {_size(free)} is "
                            f"free; free {_size(needed - free)} (or use --cache-dir on a larger disk) and re-run")


def _open_for_writing(path: Path) -> h5py.File:
    try:
        return hdf5.open_file(path, "r+")
    except OSError as e:
        raise hdf5.lock_error(path, e, writing=True) or e  # the others: storage_errors says what to do


def _create(path: Path, spec: CacheSpec, image_ids: Sequence[str], files: Sequence[str], image_root: str,
            compute: dict, n_tokens: int, dim: int, pooled_dim: int | None) -> None:
    n = len(image_ids)
    sidecar_path(path).unlink(missing_ok=True)  # an old file's report must not describe the new one
    rows = (min(n, hdf5.ROW_CHUNK),)
    with atomic_path(path) as tmp, hdf5.open_file(tmp, "w") as f:
        hdf5.create_preallocated(f, hdf5.FEATURES, (n, n_tokens, dim), np.dtype(spec.dtype), (1, n_tokens, dim))
        if pooled_dim:
            hdf5.create_preallocated(f, hdf5.POOLED, (n, pooled_dim), np.dtype(spec.dtype),
                                     (min(n, hdf5.POOLED_CHUNK), pooled_dim))
        hdf5.create_preallocated(f, hdf5.STATUS, (n,), np.dtype(np.uint8), rows)
        hdf5.create_preallocated(f, hdf5.DIGESTS, (n,), hdf5.DIGEST_DTYPE, rows)
        hdf5.create_preallocated(f, hdf5.STATS, (n, 2), np.dtype(np.int64), rows + (2,))
        hdf5.create_preallocated(f, hdf5.CHECKSUMS, (n,), np.dtype(np.uint32), rows)
        f.create_dataset(hdf5.IMAGE_IDS, data=np.array(image_ids, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset(hdf5.FILES, data=np.array(files, dtype=object), dtype=h5py.string_dtype())
        f.attrs[hdf5.ATTR_SPEC] = json.dumps(spec.to_dict(), sort_keys=True)
        f.attrs[hdf5.ATTR_KEY] = spec.key
        f.attrs[hdf5.ATTR_VERSIONS] = json.dumps(library_versions(), sort_keys=True)
        f.attrs[hdf5.ATTR_FORMAT] = hdf5.FORMAT_VERSION
        f.attrs[hdf5.ATTR_COMPUTE] = json.dumps(compute, sort_keys=True)
        f.attrs[hdf5.ATTR_IMAGE_ROOT] = image_root


def _names(f: h5py.File) -> tuple[list[str], list[str]]:
    """([N] image ids, [N] files) of an open cache."""
    return list(f[hdf5.IMAGE_IDS].asstr()[:]), list(f[hdf5.FILES].asstr()[:])


def _check_spec(f: h5py.File, spec: CacheSpec, path: Path) -> None:
    stored = CacheSpec.from_dict(json.loads(f.attrs[hdf5.ATTR_SPEC]))
    if stored.key != spec.key:
        diff = "; ".join(stored.differences(spec))
        raise CapcacheError(f"{path} was built with other settings ({diff}); delete it or use another --cache-dir")
    if hdf5.CHECKSUMS not in f:
        raise CapcacheError(f"{path} was written by an older capcache (format {f.attrs.get(hdf5.ATTR_FORMAT)}); "
                            "delete it and extract again")
