"""Reading and writing a set of a cache's rows as one slice per run of consecutive rows.

h5py turns an index array into an element-by-element selection, and HDF5 is slow at those:
writing batches of 8 scattered rows of a [400, 49, 1280] float16 dataset (one row a chunk) took
3.1-4.1 ms a row, against 0.2-0.4 ms as slices and 0.13-0.17 ms for consecutive rows either way
(2 CPU cores). Scattered rows are common: the members of an img2dataset tar come in the tar's order,
which need not be the manifest's, so every batch extracted from shards is a handful of runs; so are
the rows a resumed run redoes and those copied from a sibling cache.
"""

from __future__ import annotations

from typing import Iterator

import h5py
import numpy as np


def runs(rows: np.ndarray) -> Iterator[tuple[slice, slice]]:
    """(rows of the file, positions in ``rows``) of each run of consecutive values in increasing ``rows``."""
    rows = np.asarray(rows, dtype=np.int64)
    cuts = np.flatnonzero(np.diff(rows) != 1) + 1
    starts, stops = np.concatenate([[0], cuts]), np.concatenate([cuts, [len(rows)]])
    for first, last in zip(starts.tolist(), stops.tolist()):
        if last > first:
            yield slice(int(rows[first]), int(rows[first]) + last - first), slice(first, last)


def write_rows(dataset: h5py.Dataset, rows: np.ndarray, values: np.ndarray | int) -> None:
    """``dataset[rows] = values`` for increasing ``rows``; a scalar ``values`` goes to every row."""
    values = np.asarray(values)
    for there, here in runs(rows):
        dataset[there] = values if values.ndim == 0 else values[here]


def read_rows(dataset: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """``dataset[rows]`` for increasing ``rows``: [len(rows), ...]."""
    out = np.empty((len(rows), *dataset.shape[1:]), dtype=dataset.dtype)
    for there, here in runs(rows):
        out[here] = dataset[there]
    return out
