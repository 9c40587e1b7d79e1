"""How an augmented view of an image is made (``pipeline.augmentation`` says what a view is).

The dice of view k of an image are seeded by (augmentation seed, k, the image's content digest),
so re-running, resuming, extracting in parts or on another machine gives the same view of the
same picture: a random resized crop, then the flips, then the encoder's own normalisation.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from pipeline.augmentation import View
from pipeline.encoders.preprocessing import Preprocessing, to_rgb, upright

_TRIES = 10  # crop boxes drawn before falling back to the centre one, as torchvision's RandomResizedCrop


class ViewTransform:
    """The view's input of one image: ``for_image(content digest)`` -> PIL image -> tensor [3, crop, crop].

    A picklable object (DataLoader workers), normalised like the encoder's clean input."""

    def __init__(self, preprocessing: Preprocessing, view: View):
        self.preprocessing = preprocessing
        self.view = view

    def for_image(self, digest: str) -> Callable[[Image.Image], torch.Tensor]:
        return lambda img: self(img, digest)

    def __call__(self, img: Image.Image, digest: str) -> torch.Tensor:
        aug, prep = self.view.augmentation, self.preprocessing
        rng = np.random.default_rng([aug.seed, self.view.index, int(digest or "0", 16)])
        img = to_rgb(upright(img) if prep.exif_orientation else img)
        pixels = F.pil_to_tensor(img)  # [3, H, W] uint8
        top, left, h, w = crop_box(img.width, img.height, aug.scale, aug.ratio, rng)
        x = F.resized_crop(pixels, top, left, h, w, [prep.crop, prep.crop],
                           interpolation=InterpolationMode(prep.interpolation), antialias=True)  # [3, S, S]
        if rng.random() < aug.hflip:
            x = F.horizontal_flip(x)
        if rng.random() < aug.vflip:
            x = F.vertical_flip(x)
        x = F.to_dtype(x, torch.float32, scale=True)
        return F.normalize(x, list(prep.mean), list(prep.std))


def crop_box(width: int, height: int, scale: tuple[float, float], ratio: tuple[float, float],
             rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a box of ``scale`` of the area and ``ratio`` width/height, drawn
    with ``rng`` the way torchvision's RandomResizedCrop draws it (its own dice are global, so not
    reproducible per image); after ten misses, the largest centred box within ``ratio``."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(_TRIES):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif aspect > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w
