"""Features for image files that were never in a manifest or a cache (`capcache caption`, `capcache tag`).

A run's cache.json says which encoder, weights, grid and preprocessing produced its training
features, and at what batch size; the same encoder is rebuilt from that record, every batch runs
at that size (padded like extraction's short batches) and the output is rounded to the cache's
storage dtype, so a new image reaches a decoder or a tagger exactly as a cached one would. The
batch size matters: efficientnet_lite0 gives one photo alone other last bits than in any batch of
2 to 40 (all 40 Flickr8k photos tried: up to 0.004 apart after fp16 rounding), so `capcache
caption photo.jpg` or one request to `serve` would not see its cached features. Runs whose cache
records no batch size (caches written before it was recorded) pad to the batch size asked for.
Images are decoded batch by batch in DataLoader workers, as in extraction, so a folder of any size
is handled in bounded memory; unreadable files are reported, not fatal.
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
    """The encoder a cache was extracted with, run as it was, for new image files (``record``: a
    run's cache.json, ``pipeline.training.cache_use.cache_record``)."""

    def __init__(self, record: dict, device: torch.device, weights: str | None = None):
        spec = record["spec"]
        self.device = device
        self.encoder = prepare_encoder(rebuild_encoder(spec["encoder"], weights), device)
        self.storage = getattr(torch, spec["dtype"])
        self.preprocessing = self.encoder.preprocessing
        self.batch_size: int | None = record.get("compute", {}).get("batch_size")  # the extraction's

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
            yield rows[ok].tolist(), self.encode(batch[ok], batch_size), skipped

    def encode(self, images: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """images [B, 3, S, S] (``preprocessing.transform()``'s output) -> features [B, L, D] float32,
        computed at the cache's batch size (else ``batch_size``, else B) and rounded to its storage
        dtype, as a cache row holds them."""
        size = self.batch_size or batch_size or len(images)
        chunks = [encode_images(self.encoder, part, self.device, pad_to=size)[0] for part in images.split(size)]
        return torch.cat(chunks).to(self.storage).float()  # [B, L, D]
