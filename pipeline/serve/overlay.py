"""Word-by-word attention overlays as small in-memory PNGs (the server's `caption --attention`).

The same picture as pipeline/report/attention.py draws per token (the image as the encoder saw
it, the token's weights over the feature grid as a jet heatmap at half opacity), built with PIL
and a colour map only: the server renders from worker threads, where pyplot is not safe.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from matplotlib import colormaps
from PIL import Image

JET = colormaps["jet"]


def overlay_png(image: Image.Image, weights: np.ndarray, grid: tuple[int, int], size: int = 160) -> str:
    """image (RGB) and weights [L] over a ``grid`` -> a base64 PNG of ``size`` px on the longer side."""
    base = image.copy()
    base.thumbnail((size, size))
    heat = weights.reshape(grid).astype(np.float64)  # [rows, cols]
    heat = (heat - heat.min()) / max(heat.max() - heat.min(), 1e-12)
    small = Image.fromarray((heat * 255).astype(np.uint8), mode="L").resize(base.size, Image.BILINEAR)
    coloured = Image.fromarray((JET(np.asarray(small) / 255.0)[..., :3] * 255).astype(np.uint8), mode="RGB")
    buf = io.BytesIO()
    Image.blend(base, coloured, 0.5).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()
