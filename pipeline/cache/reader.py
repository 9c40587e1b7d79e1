"""Reading a cache during training, safely from DataLoader worker processes.

An h5py handle must not cross a fork, so each process opens the file lazily on first access
(keyed by pid). ``in_memory=True`` reads the whole feature array once, for caches that fit in RAM.
Every row is checked against the checksum stored when it was written, the first time a process
reads it: a damaged row stops training with one line instead of being learned from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from pipeline.cache import hdf5
from pipeline.cache.compute import stored_compute
from pipeline.cache.key import CacheSpec
from pipeline.cache.parts import missing_parts, stored_bytes
from pipeline.errors import CapcacheError


def fits_in_memory(path: str | os.PathLike, share: float = 0.6) -> bool:
    """Whether the cache's features fit in ``share`` of the RAM available now (Linux; True elsewhere)."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return True
    return stored_bytes(Path(path)) <= share * available


class FeatureCache:
    def __init__(self, path: str | os.PathLike, in_memory: bool = False):
        self.path = Path(path)
        if not self.path.is_file():
            raise CapcacheError(f"cache {self.path} not found; run `capcache extract` first")
        try:
            with hdf5.open_for_reading(self.path) as f:
                self.spec = CacheSpec.from_dict(json.loads(f.attrs[hdf5.ATTR_SPEC]))
                self.versions = json.loads(f.attrs[hdf5.ATTR_VERSIONS])
                self.compute = stored_compute(f.attrs)  # device, precision, batch size (``pipeline.cache.compute``)
                self.image_ids = hdf5.read_image_ids(f)
                self.status = f[hdf5.STATUS][:]
                n, self.n_tokens, self.dim = f[hdf5.FEATURES].shape  # [N, L, D]
                self.pooled_dim = f[hdf5.POOLED].shape[1] if hdf5.POOLED in f else None  # E
                self._memory = f[hdf5.FEATURES][:] if in_memory else None
                self._checksums = f[hdf5.CHECKSUMS][:] if hdf5.CHECKSUMS in f else None  # [N]; older caches: none
                gone = missing_parts(f, self.path)
        except (OSError, KeyError) as e:  # opened, but not laid out as a cache (or truncated)
            raise hdf5.damaged(self.path, e) from e
        if gone:
            raise CapcacheError(f"{self.path.name} is joined from part files and {len(gone)} of them are missing "
                                f"(e.g. {gone[0]}); run the same extract command again to redo them")
        self.row_of = {image_id: row for row, image_id in enumerate(self.image_ids)}
        self._handle: h5py.File | None = None
        self._pid: int | None = None
        self._checked = np.zeros(len(self.image_ids), dtype=bool)  # rows whose checksum this process has seen pass

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
        features = self._memory[row] if self._memory is not None else self._file()[hdf5.FEATURES][row]
        if self._checksums is not None and not self._checked[row]:
            self._check(row, features)
        return features

    def _check(self, row: int, features: np.ndarray) -> None:
        pooled = self._file()[hdf5.POOLED][row][None] if self.pooled_dim is not None else None
        if hdf5.row_checksums(features[None], pooled)[0] != self._checksums[row]:
            raise CapcacheError(f"row {row} ({self.image_ids[row]}) of {self.path} fails its checksum: the file is "
                                f"damaged; run `capcache cache verify {self.path} --repair`, then the same extract "
                                "command, to redo the damaged rows")
        self._checked[row] = True

    def pooled(self, row: int) -> np.ndarray:  # -> [E], the encoder's own image embedding (CLIP)
        if self.pooled_dim is None:
            raise CapcacheError(f"{self.path.name} holds no pooled embeddings (encoder {self.spec.encoder['encoder']})")
        return self._file()[hdf5.POOLED][row]

    def _file(self) -> h5py.File:
        if self._handle is None or self._pid != os.getpid():
            self._handle = hdf5.open_for_reading(self.path)
            self._pid = os.getpid()
        return self._handle

    def __getstate__(self) -> dict:  # never pickle an open handle into a worker
        state = self.__dict__.copy()
        state["_handle"], state["_pid"] = None, None
        return state
