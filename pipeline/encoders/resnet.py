"""torchvision ResNet-18/34/50/101/152: the grid is the last conv stage, 7 x 7 at 224 px, of 512
channels (18, 34: basic blocks; seed 003's frozen ResNet-18) or 2048 (50 and up: bottlenecks).

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

FEATURE_DIMS = {18: 512, 34: 512, 50: 2048, 101: 2048, 152: 2048}  # depth -> channels of layer4


class ResNet(FrozenEncoder):
    def __init__(self, depth: int, weights: WeightsSpec, grid: int | None):
        net, weights, prep = build_torchvision(f"resnet{depth}", weights)
        super().__init__(f"resnet{depth}", weights, prep, feature_dim=FEATURE_DIMS[depth], grid=grid,
                         options={"layer": "layer4"})
        self.model = net  # the whole torchvision model, so its published checkpoints load strictly; avgpool/fc unused

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B, 3, S, S] -> [B, (S/32)^2 or grid^2, C]
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(images))))  # [B, 64, S/4, S/4]
        x = m.layer4(m.layer3(m.layer2(m.layer1(x))))  # [B, C, S/32, S/32]
        return grid_to_tokens(x, self.grid)


for _depth in FEATURE_DIMS:
    register(f"resnet{_depth}", default_weights="DEFAULT")(partial(ResNet, _depth))
