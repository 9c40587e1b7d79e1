"""torchvision ResNet-50/101/152: the grid is the last conv stage, 7 x 7 x 2048 at 224 px.

Stage 4 (before the global average pool and the classifier) is what the seeds' attention decoders
attended over: 49 cells of 2048 channels, each seeing most of the image through its receptive field.
"""

from __future__ import annotations

from functools import partial

import torch

from pipeline.encoders.base import FrozenEncoder, grid_to_tokens
from pipeline.encoders.registry import register
from pipeline.encoders.torchvision_backbone import build_torchvision
from pipeline.encoders.weights import WeightsSpec

DEPTHS = (50, 101, 152)
FEATURE_DIM = 2048


class ResNet(FrozenEncoder):
    def __init__(self, depth: int, weights: WeightsSpec, grid: int | None):
        net, weights, prep = build_torchvision(f"resnet{depth}", weights)
        super().__init__(f"resnet{depth}", weights, prep, feature_dim=FEATURE_DIM, grid=grid,
                         options={"layer": "layer4"})
        self.model = net  # the whole torchvision model, so its published checkpoints load strictly; avgpool/fc unused

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B, 3, S, S] -> [B, (S/32)^2 or grid^2, 2048]
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(images))))  # [B, 64, S/4, S/4]
        x = m.layer4(m.layer3(m.layer2(m.layer1(x))))  # [B, 2048, S/32, S/32]
        return grid_to_tokens(x, self.grid)


for _depth in DEPTHS:
    register(f"resnet{_depth}", default_weights="DEFAULT")(partial(ResNet, _depth))
