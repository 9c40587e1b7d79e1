"""torchvision AlexNet (seed 002): the grid is the last conv layer after its ReLU, before the final
max-pool: 13 x 13 x 256 at 224 px (169 cells), the finest map the network has before pooling."""

from __future__ import annotations

import torch

from pipeline.encoders.base import FrozenEncoder, grid_to_tokens
from pipeline.encoders.registry import register
from pipeline.encoders.torchvision_backbone import build_torchvision
from pipeline.encoders.weights import WeightsSpec

FEATURE_DIM = 256


class AlexNet(FrozenEncoder):
    def __init__(self, weights: WeightsSpec, grid: int | None):
        net, weights, prep = build_torchvision("alexnet", weights)
        super().__init__("alexnet", weights, prep, feature_dim=FEATURE_DIM, grid=grid, options={"layer": "features.11"})
        self.model = net  # the whole torchvision model (classifier unused), so published checkpoints load strictly

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B, 3, S, S] -> [B, cells or grid^2, 256]
        x = self.model.features[:-1](images)  # [B, 256, 13, 13] at 224 px: every layer but the last MaxPool2d
        return grid_to_tokens(x, self.grid)


register("alexnet", default_weights="DEFAULT")(AlexNet)
