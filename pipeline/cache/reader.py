"""Reading a cache during training, safely from DataLoader worker processes.

An h5py handle must not cross a fork, so each process opens the file lazily on first access
(keyed by pid). ``in_memory=True`` reads the whole feature array once, for caches that fit in RAM.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from pipeline.cache import hdf5
from pipeline.cache.key import CacheSpec
from pipeline.errors import CapcacheError


class FeatureCache:
    def __init__(self, path: str | os.PathLike, in_memory: bool = False):
        self.path = Path(path)
        if not self.path.is_file():
            raise CapcacheError(f"cache {self.path} not found; run `capcache extract` first")
        try:
            with h5py.File(self.path, "r") as f:
                self.spec = CacheSpec.from_dict(json.loads(f.attrs[hdf5.ATTR_SPEC]))
                self.versions = json.loads(f.attrs[hdf5.ATTR_VERSIONS])
                self.image_ids = [s.decode() if isinstance(s, bytes) else s for s in f[hdf5.IMAGE_IDS][:]]
                self.status = f[hdf5.STATUS][:]
                n, self.n_tokens, self.dim = f[hdf5.FEATURES].shape  # [N, L, D]
                self._memory = f[hdf5.FEATURES][:] if in_memory else None
        except (OSError, KeyError) as e:
            raise CapcacheError(f"{self.path} is not a readable capcache file ({e}); delete it and extract again") from e
        self.row_of = {image_id: row for row, image_id in enumerate(self.image_ids)}
        self._handle: h5py.File | None = None
        self._pid: int | None = None

    @property
    def key(self) -> str:
        return self.spec.key

    def __len__(self) -> int:
        return len(self.image_ids)

    def rows(self, image_ids: list[str]) -> np.ndarray:
        """Rows of the given images; an image missing from the cache or never extracted is an error."""
        missing = [i for i in image_ids if i not in self.row_of]
        if missing:
            raise CapcacheError(f"{len(missing)} images are not in cache {self.path.name} (e.g. {missing[0]}); "
                                "extract a cache for this manifest")
        rows = np.array([self.row_of[i] for i in image_ids], dtype=np.int64)
        not_done = rows[self.status[rows] != hdf5.DONE]
        if len(not_done):
            raise CapcacheError(f"{len(not_done)} images in {self.path.name} were never extracted or are unreadable "
                                f"(e.g. {self.image_ids[not_done[0]]}); re-run extract or drop them from the manifest")
        return rows

    def __getitem__(self, row: int) -> np.ndarray:  # -> [L, D]
        if self._memory is not None:
            return self._memory[row]
        return self._file()[hdf5.FEATURES][row]

    def _file(self) -> h5py.File:
        if self._handle is None or self._pid != os.getpid():
            self._handle = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._handle

    def __getstate__(self) -> dict:  # never pickle an open handle into a worker
        state = self.__dict__.copy()
        state["_handle"], state["_pid"] = None, None
        return state
