"""Whether a cache file already holds what a request would compute, read cheaply from the file.

The report beside a cache only says which requests it has answered. That the file is complete,
has the expected key and was written from the image files as they are now is read from the .h5
itself (its key attribute, the status column and the per-row file stats: a few bytes per image),
so a leftover report, a deleted-and-restarted file or a truncated one never passes for complete.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.cache import hdf5
from pipeline.errors import CapcacheError


def confirmed_complete(path: Path, key: str, stats: np.ndarray) -> np.ndarray | None:
    """The BAD rows of the cache at ``path`` when it is complete, has ``key`` and every row was written
    from files with the current ``stats`` [N, 2]; None when there is work to do, or it cannot be
    read here and now (missing, damaged, busy: the full check then says why)."""
    if not Path(path).is_file():
        return None
    try:
        with hdf5.open_for_reading(Path(path)) as f:
            if f.attrs.get(hdf5.ATTR_KEY) != key or hdf5.STATS not in f:
                return None
            status, stored = f[hdf5.STATUS][:], f[hdf5.STATS][:]
    except (CapcacheError, OSError, KeyError):
        return None
    if status.shape != (len(stats),) or (status == hdf5.PENDING).any() or not np.array_equal(stored, stats):
        return None
    return np.flatnonzero(status == hdf5.BAD)
