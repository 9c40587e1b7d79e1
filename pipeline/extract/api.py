"""``extract``: what the CLI, the notebook and the demo call.

It imports torch and the encoder's libraries only when there is work to do, so asking again for a
finished cache returns in well under a second however large the backbone.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.data.manifest import Manifest
from pipeline.errors import CapcacheError
from pipeline.extract.result import ExtractResult
from pipeline.extract.reuse import answered, request_digest


def extract(manifest: Manifest, encoder: str, weights: str | None = None, grid: int | None = None,
            cache_dir: str | Path = "cache", batch_size: int = 32, workers: int = 2,
            device: str = "auto", dtype: str = "float16", progress: bool = True) -> ExtractResult:
    """Fill (or reuse) the cache of ``encoder`` over the manifest's images; resumes an interrupted one.

    Under ``torchrun`` every rank takes a share of the images and rank 0 writes one cache file.
    """
    if dtype not in ("float16", "float32"):
        raise CapcacheError(f"dtype {dtype!r} is not supported; use float16 (half the size) or float32")
    request = request_digest(manifest, encoder, weights, grid, dtype)
    # under torchrun rank 0 alone decides (the ranks may not even share a disk), in the full check
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        reused = answered(cache_dir, manifest, encoder, request)
        if reused is not None:
            return reused
    from pipeline.extract.runner import run_extraction  # torch, the encoder's libraries

    return run_extraction(manifest, encoder, weights, grid, cache_dir, batch_size, workers, device, dtype, progress,
                          request)
