"""Rows read and written as slices of consecutive runs equal h5py's own fancy indexing."""

from __future__ import annotations

import h5py
import numpy as np

from pipeline.cache.row_runs import read_rows, runs, write_rows


def test_runs_cut_increasing_rows_where_they_jump():
    assert [(a.start, a.stop, b.start, b.stop) for a, b in runs(np.array([1, 2, 3, 7, 9, 10]))] == \
        [(1, 4, 0, 3), (7, 8, 3, 4), (9, 11, 4, 6)]
    assert list(runs(np.array([], dtype=np.int64))) == []


def test_rows_written_and_read_by_runs_match_fancy_indexing(tmp_path):
    rng = np.random.default_rng(0)
    expected_status = np.zeros(40, np.uint8)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        mine = f.create_dataset("mine", (40, 3, 4), np.float16, chunks=(1, 3, 4))
        theirs = f.create_dataset("theirs", (40, 3, 4), np.float16, chunks=(1, 3, 4))
        status = f.create_dataset("status", (40,), np.uint8)
        for value in range(1, 6):
            rows = np.sort(rng.choice(40, size=9, replace=False))  # runs of one and of several rows
            batch = rng.standard_normal((9, 3, 4)).astype(np.float16)
            write_rows(mine, rows, batch)
            theirs[rows] = batch
            write_rows(status, rows, value)  # a scalar goes to every row
            expected_status[rows] = value
            assert np.array_equal(read_rows(mine, rows), theirs[rows])
        assert np.array_equal(mine[:], theirs[:])
        assert np.array_equal(status[:], expected_status)
