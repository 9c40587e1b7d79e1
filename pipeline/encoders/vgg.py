"""torchvision VGG-19: the grid is conv5_4 after its ReLU, before the last max-pool: 14 x 14 x 512 at 224 px.

That is the layer Show, Attend and Tell (Xu et al., 2015) attended over: 196 cells of 512 channels,
finer than the 7 x 7 after the pool, which is what soft attention benefits from.
"""

from __future__ import annotations

import torch

from pipeline.encoders.base import FrozenEncoder, grid_to_tokens
from pipeline.encoders.registry import register
from pipeline.encoders.torchvision_backbone import build_torchvision
from pipeline.encoders.weights import WeightsSpec

FEATURE_DIM = 512


class VGG19(FrozenEncoder):
    def __init__(self, weights: WeightsSpec, grid: int | None):
        net, weights, prep = build_torchvision("vgg19", weights)
        super().__init__("vgg19", weights, prep, feature_dim=FEATURE_DIM, grid=grid, options={"layer": "conv5_4"})
        self.model = net  # whole torchvision model (classifier unused) so published checkpoints load strictly

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B, 3, S, S] -> [B, (S/16)^2 or grid^2, 512]
        x = self.model.features[:-1](images)  # [B, 512, S/16, S/16]: every layer but the final MaxPool2d
        return grid_to_tokens(x, self.grid)


register("vgg19", default_weights="DEFAULT")(VGG19)
