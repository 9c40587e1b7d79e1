"""Low-level HDF5 layout of a cache file, shared by the writer and the reader.

Datasets are created with chunk space allocated up front (ALLOC_TIME_EARLY): afterwards the
extraction only overwrites raw chunk bytes and never touches HDF5 metadata, so a process killed
mid-write cannot corrupt the file; the per-row ``status`` (written after the features) says which
rows to redo.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import h5py
import numpy as np

from pipeline.errors import CapcacheError

FEATURES, POOLED, IMAGE_IDS, STATUS = "features", "pooled", "image_ids", "status"  # POOLED: optional [N, E]
FILES = "files"  # [N] image file relative to the image folder, for `cache verify --deep`
DIGESTS, STATS, CHECKSUMS = "digests", "file_stats", "checksums"  # [N] S32, [N, 2] int64, [N] uint32
PENDING, DONE, BAD = 0, 1, 2  # values of STATUS
ATTR_SPEC, ATTR_KEY, ATTR_VERSIONS, ATTR_FORMAT = "spec", "key", "versions", "format_version"
ATTR_COMPUTE, ATTR_IMAGE_ROOT = "compute", "image_root"  # where the features were computed; the image folder
FORMAT_VERSION = 2
DIGEST_DTYPE = np.dtype("S32")
ROW_CHUNK = 1 << 16  # rows per chunk of the small per-row datasets
POOLED_CHUNK = 1024

_PER_CHUNK = 160  # bytes of chunk index per allocated chunk (a v1 B-tree entry is under 100, nodes half full)
_PER_NAME = 64  # global-heap overhead of one variable-length string (object header, alignment, reference)
_FIXED = 1 << 20  # superblock, object headers, attributes, heap collections


def estimated_bytes(n: int, n_tokens: int, dim: int, pooled_dim: int | None, dtype: str, name_bytes: int = 0) -> int:
    """An upper bound on the size of a cache file before it exists: the preallocated chunks (whole
    chunks, also past the last row), their index, the names (``name_bytes``: total length of the
    image ids and file names) and the metadata. The free-space check compares it with the disk."""
    item = np.dtype(dtype).itemsize
    per_row = DIGEST_DTYPE.itemsize + 2 * 8 + 4 + 1  # digests, stats, checksums, status
    data = n * n_tokens * dim * item + _rounded(n, POOLED_CHUNK) * (pooled_dim or 0) * item \
        + _rounded(n, ROW_CHUNK) * per_row
    chunks = n + (-(-n // POOLED_CHUNK) if pooled_dim else 0) + 4 * -(-n // ROW_CHUNK)
    return data + chunks * _PER_CHUNK + name_bytes + 2 * n * _PER_NAME + _FIXED


def _rounded(n: int, chunk: int) -> int:
    """Rows allocated for ``n`` rows in chunks of ``min(n, chunk)`` rows."""
    rows = min(n, chunk)
    return -(-n // rows) * rows if n else 0


def create_preallocated(f: h5py.File, name: str, shape: tuple[int, ...], dtype: np.dtype,
                        chunks: tuple[int, ...]) -> None:
    space = h5py.h5s.create_simple(shape)
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk(chunks)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_ALLOC)  # zeros: an unwritten row reads as 0, never garbage
    dcpl.set_obj_track_times(False)  # no timestamps, so no metadata changes on write
    h5py.h5d.create(f.id, name.encode(), h5py.h5t.py_create(np.dtype(dtype)), space, dcpl=dcpl)


def read_image_ids(f: h5py.File) -> list[str]:
    return read_strings(f, IMAGE_IDS)


def read_strings(f: h5py.File, name: str) -> list[str]:
    return [s.decode() if isinstance(s, bytes) else s for s in f[name][:]]


def open_file(path: Path, mode: str) -> h5py.File:
    """h5py.File under HDF5's own lock where the file system supports locks; where it has none
    ("best-effort"), the open goes on instead of failing."""
    return h5py.File(path, mode, locking="best-effort")


def open_for_reading(path: Path) -> h5py.File:
    try:
        return open_file(path, "r")
    except OSError as e:
        raise lock_error(path, e, writing=False) or damaged(path, e) from e


def lock_error(path: Path, error: OSError, writing: bool) -> CapcacheError | None:
    """The one-line error for an open that failed on HDF5's file lock; None for any other failure.

    A writer holds the lock exclusively and readers share it, so while an extraction runs nothing
    else can open the file, and while anything reads it the extraction cannot resume: the cache is
    busy, not damaged, and must not be deleted.
    """
    text = " ".join(str(error).split())
    if "unable to lock file" not in text:
        return None
    if "errno = 11" in text:
        other = "something reading it (training, a notebook, `capcache cache verify`)" if writing \
            else "an extraction still writing it"
        return CapcacheError(f"{path} is open in another process, {other}; wait for it (or stop it) and run again")
    return CapcacheError(f"cannot lock {path}: this file system does not support file locks ({text}); "
                         "set HDF5_USE_FILE_LOCKING=FALSE and run again")


def damaged(path: Path, reason: object) -> CapcacheError:
    return CapcacheError(f"{path} is not a readable capcache file ({reason}); delete it and extract again")


def row_checksums(features: np.ndarray, pooled: np.ndarray | None = None) -> np.ndarray:
    """[b] uint32: CRC-32 of each row's stored bytes (features [b, L, D], then pooled [b, E]), so a
    flipped byte on disk is caught by `cache verify` and by training instead of being learned from."""
    out = np.empty(len(features), dtype=np.uint32)
    for i in range(len(features)):
        crc = zlib.crc32(np.ascontiguousarray(features[i]).data)
        out[i] = crc if pooled is None else zlib.crc32(np.ascontiguousarray(pooled[i]).data, crc)
    return out
