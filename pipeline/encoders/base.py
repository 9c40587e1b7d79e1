"""The frozen-encoder contract every backbone implements.

An encoder maps a batch of preprocessed images to a spatial grid of features, [B, L, D] with
L = grid cells (or patch tokens) in row-major order, which is what attention decoders read.
``describe()`` returns every fact that determines those features; it becomes the cache key.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from PIL import Image
from torch import nn

from pipeline.augmentation import View
from pipeline.encoders.preprocessing import Preprocessing
from pipeline.encoders.views import ViewTransform
from pipeline.encoders.weights import WeightsSpec


class FrozenEncoder(nn.Module):
    def __init__(self, name: str, weights: WeightsSpec, preprocessing: Preprocessing,
                 feature_dim: int, grid: int | None, options: dict[str, Any] | None = None):
        super().__init__()
        self.name = name
        self.weights = weights
        self.preprocessing = preprocessing
        self.feature_dim = feature_dim  # D
        self.grid = grid  # cells per side after optional adaptive pooling (None: the backbone's own)
        self.options = options or {}

    def freeze(self) -> "FrozenEncoder":
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    pooled_dim: int | None = None  # E, for encoders that also give one embedding per image (CLIP)
    view: View | None = None  # set to extract an augmented view of every image instead of the clean image

    def input_transform(self) -> Callable[[Image.Image], torch.Tensor] | ViewTransform:
        """What extraction turns each decoded image into: the clean preprocessing, or the view's
        transform, which is drawn per image (``ViewTransform.for_image``)."""
        return self.preprocessing.transform() if self.view is None else ViewTransform(self.preprocessing, self.view)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] -> [B, L, D]
        raise NotImplementedError

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[B, 3, H, W] -> (grid tokens [B, L, D], pooled embedding [B, E] or None), in one pass.

        Encoders with a learned image embedding (CLIP's projected one) override this so the
        cache can keep it beside the grid; grid-only backbones have none.
        """
        return self(images), None

    def describe(self) -> dict[str, Any]:
        return {
            "encoder": self.name,
            "weights": self.weights.label,
            "preprocessing": self.preprocessing.to_dict(),
            "grid": self.grid,
            "feature_dim": self.feature_dim,
            "pooled_dim": self.pooled_dim,
            "options": self.options,
            **({"view": self.view.to_dict()} if self.view is not None else {}),  # clean caches keep their keys
        }


def token_grid(description: dict, n_tokens: int) -> tuple[int, int] | None:
    """(rows, cols) of the image grid an encoder's tokens lie on, for attention maps; None when they
    lie on none: region tokens (``options.box_geometry``: boxes in score order), or a count that is
    not square. CNN grids and ViT patch grids are square."""
    if description.get("options", {}).get("box_geometry"):
        return None
    side = int(round(n_tokens ** 0.5))
    return (side, side) if side * side == n_tokens else None


def grid_to_tokens(fmap: torch.Tensor, grid: int | None) -> torch.Tensor:
    """[B, D, h, w] conv map -> [B, L, D] tokens, optionally adaptive-pooled to grid x grid first."""
    if grid is not None:
        fmap = nn.functional.adaptive_avg_pool2d(fmap, grid)  # [B, D, grid, grid]
    return fmap.flatten(2).transpose(1, 2)  # [B, h*w, D]
