"""Features for image files that were never in a manifest or a cache (`capcache caption`, `capcache tag`).

A run's cache.json says which encoder, weights, grid and preprocessing produced its training
features; the same encoder is rebuilt from that record and its output is rounded to the cache's
storage dtype, so a new image reaches a decoder or a tagger exactly as a cached one would. Images
are decoded batch by batch in DataLoader workers, as in extraction, so a folder of any size is
handled in bounded memory; unreadable files are reported, not fatal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from pipeline.encoders.registry import rebuild_encoder
from pipeline.errors import CapcacheError
from pipeline.extract.images import ImageFiles
from pipeline.extract.inference import encode_images, prepare_encoder
from pipeline.frozen_heap import freeze_inherited_heap

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def image_files(inputs: list[str | Path]) -> list[Path]:
    """Files given directly, plus image files found (recursively, sorted) in given folders."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.exists():
            files.append(item)
        else:
            raise CapcacheError(f"{item} does not exist; pass image files or folders")
    if not files:
        raise CapcacheError(f"no image files found in {', '.join(map(str, inputs))}")
    return files


class FileEncoder:
    """The encoder a cache was extracted with (``spec``: cache.json's "spec"), for new image files."""

    def __init__(self, spec: dict, device: torch.device, weights: str | None = None):
        self.device = device
        self.encoder = prepare_encoder(rebuild_encoder(spec["encoder"], weights), device)
        self.storage = getattr(torch, spec["dtype"])
        self.preprocessing = self.encoder.preprocessing

    def batches(self, files: list[Path], batch_size: int = 16, workers: int = 2, progress: bool = False,
                desc: str = "encode") -> Iterator[tuple[list[int], torch.Tensor, dict[str, str]]]:
        """-> per batch: (indices into ``files`` of the readable images, their features [b, L, D] float32
        as the cache would hand them out, {path: why} of the unreadable ones)."""
        images = ImageFiles(files, np.arange(len(files)), self.preprocessing.transform(), self.preprocessing.crop)
        loader = DataLoader(images, batch_size=batch_size, num_workers=workers, pin_memory=self.device.type == "cuda",
                            worker_init_fn=freeze_inherited_heap)
        for rows, batch, errors in tqdm(loader, desc=desc, unit="batch", disable=not progress):
            ok = torch.tensor([e == "" for e in errors])
            skipped = {str(files[r]): e for r, e in zip(rows.tolist(), errors) if e}
            if not ok.any():
                yield [], torch.empty(0), skipped
                continue
            yield rows[ok].tolist(), self.encode(batch[ok]), skipped

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, S, S] (``preprocessing.transform()``'s output) -> features [B, L, D] float32,
        rounded to the cache's storage dtype as a cache row would hold them."""
        return encode_images(self.encoder, images, self.device)[0].to(self.storage).float()
