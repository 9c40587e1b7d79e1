"""A cache written in parts, one file per slice of rows, joined into one file by HDF5 virtual datasets.

Under torchrun every rank writes whole parts with the ordinary resumable writer (no features sent
to one process, no writer shared across machines), and rank 0 then writes the joined file under
the cache's own name: its spec and key, its image ids and files, and for every per-row dataset a
virtual dataset that maps each part's rows in place. Training, `cache info`, `cache verify`, the
key check and the siblings scan open it like any cache: HDF5 resolves the parts relative to the
joined file, so the folder can move as a whole. A part file that is gone reads as pending rows
(the fill value of ``status``), so the joined cache is never taken for complete; ``missing_parts``
names what is gone.

Layout: ``<cache>.h5`` (joined) and ``<cache>.parts/<first row>-<key of the part>.h5``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from pipeline.cache import hdf5
from pipeline.cache.compute import agree, describe, stored_compute
from pipeline.cache.key import CacheSpec
from pipeline.errors import CapcacheError
from pipeline.io import atomic_path

ATTR_PARTS = "parts"  # JSON [{"file": relative to the joined file, "rows": [start, stop]}, ...]
ROW_DATASETS = (hdf5.FEATURES, hdf5.POOLED, hdf5.STATUS, hdf5.DIGESTS, hdf5.STATS, hdf5.CHECKSUMS)
_SHARED_ATTRS = (hdf5.ATTR_VERSIONS, hdf5.ATTR_FORMAT, hdf5.ATTR_COMPUTE, hdf5.ATTR_IMAGE_ROOT)


def parts_folder(cache: Path) -> Path:
    return Path(cache).with_suffix(".parts")


@dataclass(frozen=True)
class Part:
    """Rows [start, stop) of a cache, written to ``path`` as a cache of their own (``key``)."""
    start: int
    stop: int
    key: str
    path: Path


def part_path(cache: Path, start: int, key: str) -> Path:
    return parts_folder(cache) / f"{start:010d}-{key}.h5"


def join_parts(cache: Path, parts: Sequence[Part], spec: CacheSpec, image_ids: Sequence[str],
               files: Sequence[str]) -> None:
    """Write (atomically replace) ``cache`` as the join of ``parts``, which cover its rows in order.

    Every part must exist (the ranks have finished them) and all must be computed alike: a job whose
    ranks ran on different kinds of device is refused rather than joined into a mixed cache.
    """
    shapes, shared = _layout(parts)
    with atomic_path(cache) as tmp, hdf5.open_file(tmp, "w") as f:
        for name, (shape, dtype) in shapes.items():
            layout = h5py.VirtualLayout(shape=(len(image_ids), *shape), dtype=dtype)
            for part in parts:
                source = h5py.VirtualSource(str(part.path.relative_to(Path(cache).parent)), name,
                                            shape=(part.stop - part.start, *shape))
                layout[part.start:part.stop] = source
            f.create_virtual_dataset(name, layout, fillvalue=hdf5.PENDING if name == hdf5.STATUS else None)
        f.create_dataset(hdf5.IMAGE_IDS, data=np.array(image_ids, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset(hdf5.FILES, data=np.array(files, dtype=object), dtype=h5py.string_dtype())
        for name, value in shared.items():
            f.attrs[name] = value
        f.attrs[hdf5.ATTR_SPEC] = json.dumps(spec.to_dict(), sort_keys=True)
        f.attrs[hdf5.ATTR_KEY] = spec.key
        f.attrs[ATTR_PARTS] = json.dumps([{"file": str(p.path.relative_to(Path(cache).parent)),
                                           "rows": [p.start, p.stop]} for p in parts])


def _layout(parts: Sequence[Part]) -> tuple[dict[str, tuple[tuple[int, ...], np.dtype]], dict]:
    """({per-row dataset: (shape of one row, dtype)}, attributes every part shares) of the parts."""
    shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    shared: dict = {}
    for part in parts:
        with hdf5.open_for_reading(part.path) as f:
            mine = {name: (f[name].shape[1:], f[name].dtype) for name in ROW_DATASETS if name in f}
            attrs = {name: f.attrs[name] for name in _SHARED_ATTRS if name in f.attrs}
        if shapes and mine != shapes:
            raise CapcacheError(f"part {part.path} holds other shapes than the first part; delete "
                                f"{part.path.parent} and extract again")
        if shared and not agree(stored_compute(attrs), stored_compute(shared)):
            raise CapcacheError(f"part {part.path.name} was computed on {describe(stored_compute(attrs))}, the first "
                                f"on {describe(stored_compute(shared))}; run every process on the same kind of "
                                "device, at one batch size")
        shapes, shared = mine, shared or attrs
    return shapes, shared


def is_joined(cache: Path) -> bool:
    """Whether the cache file at ``cache`` is a join of parts (False when it cannot be read)."""
    try:
        with hdf5.open_for_reading(Path(cache)) as f:
            return ATTR_PARTS in f.attrs
    except (CapcacheError, OSError):
        return False


def missing_parts(f: h5py.File, cache: Path) -> list[str]:
    """The part files the joined cache ``f`` (at ``cache``) names that are not there; [] for a plain cache."""
    listed = json.loads(f.attrs.get(ATTR_PARTS, "[]"))
    return [p["file"] for p in listed if not (Path(cache).parent / p["file"]).is_file()]


def stored_bytes(cache: Path) -> int:
    """Bytes on disk of a cache: the file, and for a joined cache its parts too."""
    cache = Path(cache)
    folder = parts_folder(cache)
    return cache.stat().st_size + (sum(p.stat().st_size for p in folder.glob("*.h5")) if folder.is_dir() else 0)
