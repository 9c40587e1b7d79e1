"""How many images an extraction runs through the encoder at once when the user does not say.

A row's features depend on the batch size in their last bits (``pipeline.cache.compute``), so a
cache is continued at the batch size it was started at: the one its file records, else its
parts', else that of a sibling cache it will be extended from (``siblings``). A new cache gets the
device's default: 32 on a GPU, which large batches keep busy, and 8 on CPU cores, where the
forward pass is fastest at small batches (2 cores, bare forward, images/s at batch 4 / 8 / 32:
efficientnet_lite0 189 / 151 / 68, ResNet-50 33 / 30 / 26; whole extractions, of 1,000 Flickr8k
photos with efficientnet_lite0: 50-70 at batch 8 against 43-44 at 32, of 256 with ResNet-50: 16
against 13.5; batch 4 was as fast for the one, slower for the other: docs/benchmarks.md). Caches
written before the batch size was recorded say nothing, and are continued at the device's default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import torch

from pipeline.cache import hdf5
from pipeline.cache.compute import stored_compute
from pipeline.cache.key import CacheSpec
from pipeline.cache.parts import parts_folder
from pipeline.errors import CapcacheError
from pipeline.extract.siblings import siblings

CPU_BATCH, ACCELERATOR_BATCH = 8, 32


def chosen_batch_size(asked: int | None, dev: torch.device, recorded: Iterable[dict]) -> int:
    """``asked`` if given, else the first batch size ``recorded`` (``recorded_computes``) holds, else the
    default of ``dev``'s kind."""
    if asked is not None:
        return asked
    for compute in recorded:
        if "batch_size" in compute:
            return int(compute["batch_size"])
    return CPU_BATCH if dev.type == "cpu" else ACCELERATOR_BATCH


def recorded_computes(path: Path, spec: CacheSpec, compute: dict) -> Iterator[dict]:
    """The compute facts of the cache file at ``path``, of its parts, then of its siblings computed
    as ``compute`` says (``siblings``), those that can be read, lazily: a file is opened only when
    the earlier ones record no batch size."""
    for file in _candidates(path, spec, compute):
        if not file.is_file():
            continue
        try:
            with hdf5.open_for_reading(file) as f:
                yield stored_compute(f.attrs)
        except (CapcacheError, OSError):
            continue


def _candidates(path: Path, spec: CacheSpec, compute: dict) -> Iterator[Path]:
    yield path
    folder = parts_folder(path)
    if folder.is_dir():
        yield from sorted(folder.glob("*.h5"))
    yield from siblings(path, spec, compute)  # scanned only if nothing before records a size
