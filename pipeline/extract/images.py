"""Decoding image files in DataLoader workers without letting one bad file stop the run.

A file that cannot be decoded yields a zero tensor and the reason; the runner marks its row BAD
and lists it in the report, and the hours of work around it are kept. Extraction reads every
byte anyway, so its items also carry the file's content digest and stats, which the cache keeps
per row to tell later whether the image changed. Images inside img2dataset tars
(``shard_images``) make their items with the same ``hashed_item`` and ``failed_item``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from pipeline.cache.contents import MISSING, read_with_digest
from pipeline.encoders.views import ViewTransform

Item = tuple[int, torch.Tensor, str, str, int, int]  # (row, image [3, S, S], error or "", digest, size, mtime_ns)


def load_image(path: Path, transform: Callable[[Image.Image], torch.Tensor]) -> torch.Tensor:
    """The one way capcache turns an image file into encoder input (extraction and `caption` alike)."""
    return decode_image(Path(path).read_bytes(), transform)


def decode_image(data: bytes, transform: Callable[[Image.Image], torch.Tensor]) -> torch.Tensor:
    """Image bytes -> encoder input; ``transform`` (``Preprocessing.transform``) also turns it upright."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return transform(img)


class ImageFiles(Dataset):
    """Items are (row, image [3, S, S], error message or "")."""

    def __init__(self, paths: list[Path], rows: np.ndarray, transform: Callable, crop: int):
        self.paths = paths  # indexed by row
        self.rows = rows  # the rows this run still has to do
        self.transform = transform
        self.crop = crop

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, str]:
        return self._item(int(self.rows[i]))[:3]

    def _item(self, row: int) -> Item:
        return hashed_item(row, lambda: read_with_digest(self.paths[row]), self.transform, self.crop)


def hashed_item(row: int, read: Callable[[], tuple[bytes, str, tuple[int, int]]], transform: Callable, crop: int,
                stats: tuple[int, int] = (MISSING, MISSING)) -> Item:
    """The item of the image ``read()`` returns as (bytes, digest, (size, mtime_ns)); any read or
    decoder failure is data, not a crash (``stats``: what the row's stats are when ``read`` fails).
    ``transform``: ``FrozenEncoder.input_transform()``."""
    digest = ""
    try:
        data, digest, stats = read()
        if isinstance(transform, ViewTransform):  # an augmented view: its dice are seeded by the content
            transform = transform.for_image(digest)
        return row, decode_image(data, transform), "", digest, *stats
    except Exception as e:
        return failed_item(row, e, crop, digest, stats)


def failed_item(row: int, error: Exception, crop: int, digest: str = "",
                stats: tuple[int, int] = (MISSING, MISSING)) -> Item:
    """A row that could not be read or decoded: a zero image and the reason."""
    return row, torch.zeros(3, crop, crop), f"{type(error).__name__}: {error}".strip(), digest, *stats


class HashedImageFiles(ImageFiles):
    """Items are (row, image [3, S, S], error or "", content digest, size, mtime_ns), for extraction."""

    def __getitem__(self, i: int) -> Item:
        return self._item(int(self.rows[i]))
