"""Decoding image files in DataLoader workers without letting one bad file stop the run.

A file that cannot be decoded yields a zero tensor and the reason; the runner marks its row BAD
and lists it in the report, and the hours of work around it are kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset


def load_image(path: Path, transform: Callable[[Image.Image], torch.Tensor]) -> torch.Tensor:
    """The one way capcache turns an image file into encoder input (extraction and `caption` alike)."""
    with Image.open(path) as img:
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
        row = int(self.rows[i])
        try:
            return row, load_image(self.paths[row], self.transform), ""
        except Exception as e:  # any decoder failure is data, not a crash
            return row, torch.zeros(3, self.crop, self.crop), f"{type(e).__name__}: {e}".strip()
