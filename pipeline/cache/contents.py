"""Which image files changed since their rows were written: size and mtime cheaply, content exactly.

Extraction reads every byte of every image anyway, so it records per row the file's size and
mtime (``stats`` [N, 2] int64) and a digest of its bytes. Asking again compares stats only (one
``stat`` per image); a row whose stats moved is hashed again, and re-extracted only when its
content differs (a copied or touched file keeps its features). ``cache verify --deep`` hashes all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.digests import bytes_digest, file_digest

MISSING = -1  # size (and mtime) of a file that is not there


def file_stats(paths: Sequence[Path]) -> np.ndarray:
    """[N, 2] int64: (size in bytes, mtime in ns) per file; MISSING for a file that cannot be stat'ed."""
    out = np.full((len(paths), 2), MISSING, dtype=np.int64)
    for i, path in enumerate(paths):
        try:
            st = os.stat(path)
        except OSError:
            continue
        out[i] = st.st_size, st.st_mtime_ns
    return out


def read_with_digest(path: Path) -> tuple[bytes, str, tuple[int, int]]:
    """(bytes, digest, (size, mtime_ns)) of one file, the stats taken from the same open file."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        data = f.read()
    return data, bytes_digest(data), (st.st_size, st.st_mtime_ns)


def moved_rows(stored: np.ndarray, current: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The ``rows`` whose stored [N, 2] stats differ from the current ones."""
    return rows[(stored[rows] != current[rows]).any(axis=1)]


def changed_content(paths: Sequence[Path], digests: Sequence[str], rows: np.ndarray) -> np.ndarray:
    """The ``rows`` whose file content no longer has the stored digest (a missing file has changed)."""
    changed = []
    for row in rows:
        try:
            same = file_digest(paths[row]) == digests[row]
        except OSError:
            same = False
        if not same:
            changed.append(int(row))
    return np.array(changed, dtype=np.int64)
