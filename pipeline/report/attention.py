"""Word-by-word attention heatmaps over the image the encoder actually saw.

The image is resized and centre-cropped the way the encoder's preprocessing does it, so each grid
cell of the heatmap lies over the pixels that produced that feature.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from pipeline.inference.caption_images import CaptionResult  # noqa: E402
from pipeline.encoders.preprocessing import Preprocessing  # noqa: E402
from pipeline.errors import CapcacheError  # noqa: E402
from pipeline.io import atomic_path  # noqa: E402

PANELS_PER_ROW = 5


def save_attention_map(image_path: Path, words: list[str], attention: np.ndarray, grid: tuple[int, int],
                       preprocessing: Preprocessing, out: Path, ended: bool) -> Path:
    """attention [T, L] (one row per emitted token: the words, then <end> when the caption ``ended``)
    -> PNG with the image and one labelled heatmap per token."""
    labels = panel_labels(words, attention, ended)
    with Image.open(image_path) as img:
        seen = preprocessing.view(img)
    cols = min(PANELS_PER_ROW, len(labels) + 1)
    rows = -(-(len(labels) + 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    panels = axes.ravel()
    panels[0].imshow(seen)
    panels[0].set_title(" ".join(words) if len(" ".join(words)) < 28 else "image", fontsize=8)
    for ax, word, weights in zip(panels[1:], labels, attention):
        heat = weights.reshape(grid)  # [rows, cols] of the feature grid
        ax.imshow(seen)
        ax.imshow(heat, cmap="jet", alpha=0.5, extent=(0, seen.width, seen.height, 0), interpolation="bilinear")
        ax.set_title(word, fontsize=9)
    for ax in panels:
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return out


def panel_labels(words: list[str], attention: np.ndarray, ended: bool) -> list[str]:
    """The token above each heatmap: the words, and <end> only when the caption emitted it (one cut at
    max_len never did, and its attention has no row for it)."""
    labels = [*words, *(["<end>"] if ended else [])]
    if len(attention) != len(labels):
        raise CapcacheError(f"{len(attention)} attention rows for the {len(labels)} tokens of {' '.join(labels)!r}")
    return labels


def save_attention_maps(result: CaptionResult, out_dir: Path) -> list[Path]:
    """One PNG per captioned image (``caption_images(..., attention=True)``), numbered in input order."""
    if result.grid is None:
        raise CapcacheError("this run's features are not a square grid; attention maps need one")
    return [save_attention_map(item.path, item.caption.split(), item.attention, result.grid, result.preprocessing,
                               Path(out_dir) / f"{i:04d}_{item.path.stem}.png", item.ended)
            for i, item in enumerate(result.images)]
