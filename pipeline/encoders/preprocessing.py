"""Image preprocessing owned by each encoder and recorded in every cache.

Features are only comparable when the pixels that produced them were prepared the same way, so
the full recipe (orientation, resize, crop, interpolation, normalisation) is a value that goes into
the cache key, not code hidden inside a model wrapper.

Phone photos are often stored sideways with an EXIF Orientation tag that every viewer (and every
annotator who captioned them) applies; ``exif_orientation`` applies it too, before anything else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch
from PIL import Image, ImageOps
from torchvision.transforms import v2 as T
from torchvision.transforms import InterpolationMode

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ORIENTATION = 0x0112  # the EXIF tag


@dataclass(frozen=True)
class Preprocessing:
    resize: int  # shorter side is resized to this many pixels
    crop: int  # then a centre crop of crop x crop
    interpolation: str = "bilinear"  # "bilinear" | "bicubic" | "nearest"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    exif_orientation: bool = True  # turn photos upright as their EXIF Orientation tag says

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def transform(self) -> Callable[[Image.Image], torch.Tensor]:
        """PIL image (any mode) -> float tensor [3, crop, crop]."""
        return T.Compose([
            *([T.Lambda(upright)] if self.exif_orientation else []),
            T.Lambda(to_rgb),
            T.PILToTensor(),
            T.Resize(self.resize, interpolation=InterpolationMode(self.interpolation), antialias=True),
            T.CenterCrop(self.crop),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(self.mean, self.std),
        ])

    def view(self, img: Image.Image) -> Image.Image:
        """The RGB picture the encoder sees (upright, resized, centre-cropped), unnormalised: what an
        attention map over the feature grid lies on."""
        img = to_rgb(upright(img) if self.exif_orientation else img)
        resized = T.Resize(self.resize, interpolation=InterpolationMode(self.interpolation))(img)
        return T.CenterCrop(self.crop)(resized)


def upright(img: Image.Image) -> Image.Image:
    """The image as viewers show it: rotated / mirrored by its EXIF Orientation (2-8); as is otherwise."""
    if img.getexif().get(ORIENTATION, 1) == 1:
        return img  # the common case, without the copy exif_transpose makes
    return ImageOps.exif_transpose(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """Grayscale, palette, CMYK and RGBA photos all become RGB (alpha composited on white)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")
