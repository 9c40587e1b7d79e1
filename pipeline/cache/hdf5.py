"""Low-level HDF5 layout of a cache file, shared by the writer and the reader.

Datasets are created with chunk space allocated up front (ALLOC_TIME_EARLY): afterwards the
extraction only overwrites raw chunk bytes and never touches HDF5 metadata, so a process killed
mid-write cannot corrupt the file; the per-row ``status`` (written after the features) says which
rows to redo.
"""

from __future__ import annotations

import h5py
import numpy as np

FEATURES, IMAGE_IDS, STATUS = "features", "image_ids", "status"
PENDING, DONE, BAD = 0, 1, 2  # values of STATUS
ATTR_SPEC, ATTR_KEY, ATTR_VERSIONS, ATTR_FORMAT = "spec", "key", "versions", "format_version"
FORMAT_VERSION = 1


def create_preallocated(f: h5py.File, name: str, shape: tuple[int, ...], dtype: np.dtype,
                        chunks: tuple[int, ...]) -> None:
    space = h5py.h5s.create_simple(shape)
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk(chunks)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_ALLOC)  # zeros: an unwritten row reads as 0, never garbage
    dcpl.set_obj_track_times(False)  # no timestamps, so no metadata changes on write
    h5py.h5d.create(f.id, name.encode(), h5py.h5t.py_create(np.dtype(dtype)), space, dcpl=dcpl)
