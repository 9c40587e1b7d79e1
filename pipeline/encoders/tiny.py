"""A small seeded random conv stem: needs no download, runs fast on a CPU.

Used by the offline demo and the tests. Random ReLU conv features keep colour and position
information well enough for a decoder to learn the synthetic demo set; the seed makes every
process (and every resumed extraction) build the identical network. Weights are Kaiming-normal
(ReLU gain) with zero bias: PyTorch's default conv init shrinks the signal at every layer, which
left features of ~0.02 that differed between images by ~0.005 and a decoder that ignored them.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.encoders.base import FrozenEncoder, grid_to_tokens
from pipeline.encoders.preprocessing import Preprocessing
from pipeline.encoders.registry import register
from pipeline.encoders.weights import WeightsSpec, load_state_file, load_strict, seeded
from pipeline.errors import CapcacheError

IMAGE_SIZE = 96
CHANNELS = (3, 32, 64, 128)


class TinyCNN(FrozenEncoder):
    def __init__(self, weights: WeightsSpec, grid: int | None):
        prep = Preprocessing(resize=IMAGE_SIZE, crop=IMAGE_SIZE, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        super().__init__("tiny-cnn", weights, prep, feature_dim=CHANNELS[-1], grid=grid or 6)
        layers: list[nn.Module] = []
        with seeded(int(weights.value) if weights.kind == "random" else 0):
            for c_in, c_out in zip(CHANNELS, CHANNELS[1:]):  # each halves the side: 96 -> 48 -> 24 -> 12
                conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
                nn.init.zeros_(conv.bias)
                layers += [conv, nn.ReLU(inplace=True)]
            self.body = nn.Sequential(*layers)
        if weights.kind == "file":
            load_strict(self.body, load_state_file(weights.value), weights.value)
        elif weights.kind == "named":
            raise CapcacheError(f"tiny-cnn has no published weights ({weights.value!r}); use random or a local file")

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B, 3, 96, 96] -> [B, grid*grid, 128]
        return grid_to_tokens(self.body(images), self.grid)  # body: [B, 128, 12, 12]


register("tiny-cnn", default_weights="random")(TinyCNN)
