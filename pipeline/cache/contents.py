"""Which image files changed since their rows were written: size and mtime cheaply, content exactly.

Extraction reads every byte of every image anyway, so it records per row the file's size and
mtime (``stats`` [N, 2] int64) and a digest of its bytes. Asking again compares stats only (one
``stat`` per image); a row whose stats moved is hashed again, and re-extracted only when its
content differs (a copied or touched file keeps its features). ``cache verify --deep`` hashes all.

An image inside an img2dataset tar has its tar's stats (``pipeline.data.image_source``) and the
digest of its member's bytes: when a tar's stats moved, the tar is read once for all its rows
that are asked about, never once per row.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.data import shard_stream
from pipeline.data.image_source import ImageSource, members_by_tar
from pipeline.digests import bytes_digest, file_digest

MISSING = -1  # size (and mtime) of a file that is not there


def file_stats(paths: Sequence[Path]) -> np.ndarray:
    """[N, 2] int64: (size in bytes, mtime in ns) per file; MISSING for a file that cannot be stat'ed.

    A path repeated next to itself (the rows of one shard) is stat'ed once."""
    out = np.full((len(paths), 2), MISSING, dtype=np.int64)
    last: Path | None = None
    for i, path in enumerate(paths):
        if path == last:
            out[i] = out[i - 1]
            continue
        last = path
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


def changed_content(sources: Sequence[ImageSource], digests: Sequence[str], rows: np.ndarray) -> np.ndarray:
    """The ``rows`` whose image no longer has the stored digest (a missing image has changed)."""
    changed = []
    for row in rows:
        if sources[row].in_shard:
            continue
        try:
            same = file_digest(sources[row].file) == digests[row]
        except OSError:
            same = False
        if not same:
            changed.append(int(row))
    for shard, members in members_by_tar(sources, rows).items():
        changed += _changed_members(shard, members, digests)
    return np.array(sorted(changed), dtype=np.int64)


def _changed_members(shard: Path, members: dict[str, int], digests: Sequence[str]) -> list[int]:
    """The rows of ``members`` {member: row} whose bytes in ``shard`` differ from their digest, in one pass."""
    same: set[str] = set()
    try:
        for name, data in shard_stream.read_members(shard, members):
            if bytes_digest(data) == digests[members[name]]:
                same.add(name)
    except shard_stream.UnreadableShard:
        pass  # what was read before still counts; the rest is redone, and reported bad if it still cannot be read
    return [row for name, row in members.items() if name not in same]
