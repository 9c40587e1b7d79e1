"""Turning uploaded bytes into encoder input, or a clear reason why not, without touching the disk.

Browsers and curl send anything: a renamed PDF, a JPEG cut off mid-transfer, a GIF, an empty file,
a 9000 x 6000 photo. Each is answered on its own (one bad file never fails the others of a
request). Huge JPEGs are decoded at a reduced scale by libjpeg (``draft``), still at least twice
the encoder's input size, so a 54-megapixel photo costs a fraction of its full decode; other
formats above ``MAX_PIXELS`` are refused instead of exhausting memory.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import torch
from PIL import Image, UnidentifiedImageError

from pipeline.encoders.preprocessing import Preprocessing

MAX_PIXELS = 60_000_000  # more than any camera photo (9000 x 6000 = 54 M) and far below PIL's bomb limit


class BadImage(ValueError):
    """An upload that is not a usable image; the message says why, for the client."""


@dataclass
class Upload:
    name: str  # the client's file name (or "image 1", ...), echoed back, never a path of this machine
    data: bytes


def decode_upload(upload: Upload, preprocessing: Preprocessing,
                  transform: Callable[[Image.Image], torch.Tensor]) -> tuple[torch.Tensor, Image.Image]:
    """-> (encoder input [3, S, S] by ``transform``, the picture the encoder sees, for overlays)."""
    side = preprocessing.crop
    if not upload.data:
        raise BadImage("empty upload (0 bytes)")
    try:
        with Image.open(io.BytesIO(upload.data)) as img:
            if img.width * img.height > MAX_PIXELS and img.format != "JPEG":
                raise BadImage(f"{img.width} x {img.height} pixels is more than this server decodes "
                               f"({MAX_PIXELS // 1_000_000} megapixels)")
            if img.format == "JPEG":
                img.draft("RGB", (2 * side, 2 * side))  # libjpeg scales by 1/2, 1/4, 1/8 while decoding
            img.seek(0)  # a GIF or APNG: its first frame
            img.load()
            return transform(img), preprocessing.view(img)
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("not an image (or a format Pillow cannot read)") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        raise BadImage(f"cannot decode the image ({e})") from None
    except Image.DecompressionBombError as e:
        raise BadImage(f"image too large ({e})") from None
