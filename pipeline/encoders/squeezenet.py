"""torchvision SqueezeNet 1.1 (seed 002): the grid is the output of the last Fire module,
13 x 13 x 512 at 224 px, before the classifier's dropout and 1 x 1 convolution."""

from __future__ import annotations

import torch

from pipeline.encoders.base import FrozenEncoder, grid_to_tokens
from pipeline.encoders.registry import register
from pipeline.encoders.torchvision_backbone import build_torchvision
from pipeline.encoders.weights import WeightsSpec

FEATURE_DIM = 512


class SqueezeNet(FrozenEncoder):
    def __init__(self, weights: WeightsSpec, grid: int | None):
        net, weights, prep = build_torchvision("squeezenet1_1", weights)
        super().__init__("squeezenet1_1", weights, prep, feature_dim=FEATURE_DIM, grid=grid, options={"layer": "features"})
        self.model = net  # the whole torchvision model (classifier unused), so published checkpoints load strictly

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B, 3, S, S] -> [B, cells or grid^2, 512]
        return grid_to_tokens(self.model.features(images), self.grid)  # features: [B, 512, 13, 13] at 224 px


register("squeezenet1_1", default_weights="DEFAULT")(SqueezeNet)
