"""Pixels for a scene: anti-aliased shapes with a little colour, size and position jitter.

The jitter and the pixel noise keep the set from being a lookup table of 48 x 9 stamps, so
a decoder has to read colour and place from features rather than memorise exact pixel patterns;
every variation stays well inside its concept (a "small" shape never grows near a "large" one,
and a shape never leaves its grid cell).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from pipeline.data.synthetic.config import GRID
from pipeline.data.synthetic.scene import Scene, SceneObject

RGB = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 235),
    "yellow": (240, 215, 40),
    "purple": (150, 60, 200),
    "white": (240, 240, 240),
}
EXTENT = {"small": (0.38, 0.48), "large": (0.70, 0.84)}  # object width as a fraction of its cell
SUPERSAMPLE = 4  # draw large, then box-downsample: PIL's polygons have no anti-aliasing of their own
COLOUR_JITTER = 15  # per channel, 0-255 scale
BACKGROUND_GREY = (35, 65)  # a dark grey, so white and yellow stand out as well as blue and purple


def draw_scene(scene: Scene, image_size: int, noise: float, rng: np.random.Generator) -> Image.Image:
    side = image_size * SUPERSAMPLE
    grey = int(rng.integers(*BACKGROUND_GREY))
    canvas = Image.new("RGB", (side, side), (grey, grey, grey))
    pen = ImageDraw.Draw(canvas)
    for obj in scene.objects:
        _draw_object(pen, obj, side / GRID, rng)
    image = canvas.reduce(SUPERSAMPLE)
    return _add_noise(image, noise, rng) if noise > 0 else image


def _draw_object(pen: ImageDraw.ImageDraw, obj: SceneObject, cell: float, rng: np.random.Generator) -> None:
    """Place the object at a random spot of its cell, never crossing the cell's border."""
    half = cell * rng.uniform(*EXTENT[obj.size]) / 2
    slack = cell / 2 - half  # how far the centre may move before the shape leaves its cell
    cx = (obj.col + 0.5) * cell + rng.uniform(-slack, slack)
    cy = (obj.row + 0.5) * cell + rng.uniform(-slack, slack)
    base = np.array(RGB[obj.colour])
    fill = tuple(int(v) for v in np.clip(base + rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, 3), 0, 255))
    _SHAPE_DRAWERS[obj.shape](pen, cx, cy, half, fill)


def _circle(pen: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill: tuple) -> None:
    pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)


def _square(pen: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill: tuple) -> None:
    s = 0.85 * r  # a full-extent square looks much bigger than a circle of the same width
    pen.rectangle((cx - s, cy - s, cx + s, cy + s), fill=fill)


def _triangle(pen: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill: tuple) -> None:
    pen.polygon([(cx, cy - r), (cx + r, cy + 0.8 * r), (cx - r, cy + 0.8 * r)], fill=fill)


def _cross(pen: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill: tuple) -> None:
    arm = 0.33 * r
    pen.rectangle((cx - r, cy - arm, cx + r, cy + arm), fill=fill)
    pen.rectangle((cx - arm, cy - r, cx + arm, cy + r), fill=fill)


_SHAPE_DRAWERS = {"circle": _circle, "square": _square, "triangle": _triangle, "cross": _cross}


def _add_noise(image: Image.Image, std: float, rng: np.random.Generator) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32)
    noisy = pixels + rng.normal(0.0, std, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8), "RGB")
