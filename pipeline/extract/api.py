"""``extract``: what the CLI, the notebook and the demo call.

It imports torch and the encoder's libraries only when there is work to do, so asking again for a
finished cache returns in well under a second however large the backbone. Options and the image
folder are checked first, before anything is written or built.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from pipeline.augmentation import Augmentation, View
from pipeline.cache.contents import MISSING, file_stats
from pipeline.data.image_source import stored_name
from pipeline.data.manifest import Manifest
from pipeline.errors import CapcacheError
from pipeline.extract.result import ExtractResult
from pipeline.extract.reuse import answered, request_digest

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
MOST_MISSING = 0.5  # refuse when more than this share of the images is not there


def extract(manifest: Manifest, encoder: str, weights: str | None = None, grid: int | None = None,
            cache_dir: str | Path = "cache", batch_size: int | None = None, workers: int = 2,
            device: str = "auto", dtype: str = "float16", progress: bool = True,
            rows_per_part: int | None = None, views: int = 0,
            augmentation: Augmentation | None = None) -> ExtractResult:
    """Fill (or reuse) the cache of ``encoder`` over the manifest's images; resumes an interrupted one.

    Under ``torchrun`` (or with ``rows_per_part``) the cache is written in parts of ``rows_per_part``
    rows (default up to 10,000, at least 4 parts a process), every rank filling whole parts, and
    rank 0 joins them into one cache file (``in_parts``). ``views`` > 0: then also the caches of
    that many augmented views (``pipeline.encoders.views``, made with ``augmentation``), one after
    the other, each resumable and reused like the clean one; they are the result's ``views``.
    ``batch_size``: images per forward pass; by default the cache's own when it continues one, else
    8 on CPU and 32 on a GPU (``batch_size``).
    """
    check_options(dtype, batch_size, workers, grid, device)
    if rows_per_part is not None and rows_per_part < 1:
        raise CapcacheError(f"rows per part {rows_per_part} is out of range; it must be at least 1")
    if views < 0:
        raise CapcacheError(f"views {views} is out of range; it must be 0 (the clean images only) or more")
    manifest.require_image_files()  # URL lists: one line saying what to do
    stats = file_stats(manifest.image_files())  # [N, 2] (size, mtime_ns) of each image file, or of the tar holding it
    check_images_exist(manifest, stats)
    augmentation = augmentation or Augmentation()
    wanted = [None, *(View(k, augmentation) for k in range(1, views + 1))]  # the clean cache, then each view's
    requests = [request_digest(manifest, encoder, weights, grid, dtype, view) for view in wanted]
    # under torchrun rank 0 alone decides (the ranks may not even share a disk), in the full check
    one_process = int(os.environ.get("WORLD_SIZE", "1")) <= 1
    results = [answered(cache_dir, manifest, encoder, r, stats) if one_process else None for r in requests]
    if any(r is None for r in results):
        from pipeline.extract.runner import run_extraction  # torch, the encoder's libraries

        todo = [(view, request) for view, request, done in zip(wanted, requests, results) if done is None]
        made = iter(run_extraction(manifest, encoder, weights, grid, cache_dir, batch_size, workers, device, dtype,
                                   progress, todo, stats, rows_per_part))
        results = [done if done is not None else next(made) for done in results]
    result = results[0]
    result.views = results[1:]
    return result


def check_options(dtype: str, batch_size: int | None, workers: int, grid: int | None, device: str) -> None:
    if dtype not in ("float16", "float32"):
        raise CapcacheError(f"dtype {dtype!r} is not supported; use float16 (half the size) or float32")
    for name, value, least in (("batch size", batch_size, 1), ("workers", workers, 0), ("grid", grid, 1)):
        if value is not None and value < least:
            raise CapcacheError(f"{name} {value} is out of range; it must be at least {least}")
    if not _DEVICE.fullmatch(device):
        raise CapcacheError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N (or mps)")


def check_images_exist(manifest: Manifest, stats: np.ndarray) -> None:
    """Refuse a manifest whose image folder is gone or moved, rather than fill a cache with BAD rows."""
    root = Path(manifest.image_root)
    if not root.is_dir():
        raise CapcacheError(f"image folder {root} of manifest {manifest.name!r} does not exist; put the images "
                            "there, or import the manifest again with --images pointing at them")
    missing = np.flatnonzero(stats[:, 0] == MISSING)
    if len(missing) > MOST_MISSING * len(stats):
        example = stored_name(manifest.images[missing[0]])
        raise CapcacheError(f"{len(missing)} of {len(stats)} images of manifest {manifest.name!r} are missing from "
                            f"{root} (e.g. {example}); is that the right folder? Import the manifest again with "
                            "--images pointing at them")
