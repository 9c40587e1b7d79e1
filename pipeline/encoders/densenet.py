"""torchvision DenseNet-121: the grid is the ReLU'd final feature map, 7 x 7 x 1024 at 224 px.

torchvision's classifier sees ``relu(features(x))`` (the last norm5 is not followed by a ReLU inside
``features``), so the grid applies that ReLU too: these are the activations the network was trained
to pool and classify.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from pipeline.encoders.base import FrozenEncoder, grid_to_tokens
from pipeline.encoders.registry import register
from pipeline.encoders.torchvision_backbone import build_torchvision
from pipeline.encoders.weights import WeightsSpec

FEATURE_DIM = 1024
# The published files name layers "denselayer1.norm.1.weight"; the model calls them "denselayer1.norm1.weight".
LEGACY_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def current_keys(state: dict) -> dict:
    """Old-style DenseNet checkpoint keys renamed as torchvision's own loader renames them."""
    return {(m.group(1) + m.group(2) if (m := LEGACY_KEY.match(k)) else k): v for k, v in state.items()}


class DenseNet121(FrozenEncoder):
    def __init__(self, weights: WeightsSpec, grid: int | None):
        net, weights, prep = build_torchvision("densenet121", weights, fix_keys=current_keys)
        super().__init__("densenet121", weights, prep, feature_dim=FEATURE_DIM, grid=grid,
                         options={"layer": "relu(features)"})
        self.model = net  # whole torchvision model (classifier unused) so published checkpoints load strictly

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B, 3, S, S] -> [B, (S/32)^2 or grid^2, 1024]
        x = nn.functional.relu(self.model.features(images))  # [B, 1024, S/32, S/32]
        return grid_to_tokens(x, self.grid)


register("densenet121", default_weights="DEFAULT")(DenseNet121)
