"""What the torchvision CNN families (resnet.py, densenet.py, vgg.py, alexnet.py, squeezenet.py) share:
building the network with its weights, and the encoder whose grid is the network's ``features`` stack.
fasterrcnn_regions.py, whose detector torchvision builds differently, shares the weights (``torchvision_weights``).

Published weights are torchvision's enum names (``IMAGENET1K_V2``, ``DEFAULT``...); the recorded
name is the member ``DEFAULT`` resolves to, so the cache key does not change meaning when a later
torchvision points DEFAULT elsewhere, and asking for ``DEFAULT`` or its target shares one cache.
Preprocessing is each weights' own recipe (ResNet-50 V2 was trained with resize 232, V1 with 256);
random and local-file weights use the DEFAULT member's, the one a local copy most likely is.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torchvision import models

from pipeline.encoders.base import FrozenEncoder, grid_to_tokens
from pipeline.encoders.downloads import torchvision_state_dict
from pipeline.encoders.preprocessing import Preprocessing
from pipeline.encoders.weights import WeightsSpec, load_state_file, load_strict, seeded
from pipeline.errors import CapcacheError


def build_torchvision(arch: str, weights: WeightsSpec, fix_keys: Callable[[dict], dict] = dict
                      ) -> tuple[nn.Module, WeightsSpec, Preprocessing]:
    """torchvision ``arch`` with ``weights`` loaded strictly, the weights as the cache key records them, and their
    preprocessing.

    ``fix_keys`` maps a checkpoint's key names to the model's (DenseNet's published files predate its
    current names); it is applied to published and local files alike, so a copied download loads as a file too.
    """
    state, source, weights, member = torchvision_weights(arch, weights)
    with seeded(int(weights.value) if weights.kind == "random" else 0):
        net = models.get_model(arch, weights=None)
    if state is not None:
        load_strict(net, fix_keys(state), source)
    return net, weights, enum_preprocessing(member)


def torchvision_weights(arch: str, weights: WeightsSpec
                        ) -> tuple[dict | None, str, WeightsSpec, models.WeightsEnum]:
    """What ``weights`` of torchvision's ``arch`` mean: the state dict to load (None: random), its source for
    error messages, the weights as the cache key records them, and the enum member whose recipe applies.

    Read before the network is built, so a missing file fails at once, not after VGG's 2 s init.
    """
    member = published(arch, weights.value) if weights.kind == "named" else models.get_model_weights(arch).DEFAULT
    state, source = None, weights.value
    if weights.kind == "file":
        state = load_state_file(weights.value)
    elif weights.kind == "named":
        state, source = torchvision_state_dict(member), repr(member)
        weights = WeightsSpec("named", member.name)
    return state, source, weights, member


def published(arch: str, name: str) -> models.WeightsEnum:
    """The weights enum member called ``name`` (``DEFAULT`` resolves to its target), or an error listing the valid ones."""
    enum = models.get_model_weights(arch)
    try:
        return enum[name]
    except KeyError:
        raise CapcacheError(f"unknown weights {name!r} for {arch}; valid: {', '.join(enum.__members__)}, "
                            "random[:SEED] or a local .pth file") from None


def enum_preprocessing(member: models.WeightsEnum) -> Preprocessing:
    """The weights' own ImageClassification transform, as a recorded Preprocessing."""
    t = member.transforms()
    return Preprocessing(resize=t.resize_size[0], crop=t.crop_size[0], interpolation=t.interpolation.value,
                         mean=tuple(t.mean), std=tuple(t.std))


class FeaturesTrunk(FrozenEncoder):
    """A torchvision CNN whose grid is its ``features`` stack (VGG, AlexNet, SqueezeNet), optionally
    without the final max-pool, so the grid keeps the finer map the pool would halve."""

    def __init__(self, arch: str, feature_dim: int, layer: str, drop_last_pool: bool, weights: WeightsSpec,
                 grid: int | None):
        net, weights, prep = build_torchvision(arch, weights)
        super().__init__(arch, weights, prep, feature_dim=feature_dim, grid=grid, options={"layer": layer})
        self.model = net  # the whole torchvision model (classifier unused), so published checkpoints load strictly
        self.drop_last_pool = drop_last_pool

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B, 3, S, S] -> [B, cells or grid^2, feature_dim]
        features = self.model.features
        x = (features[:-1] if self.drop_last_pool else features)(images)  # [B, feature_dim, h, w]
        return grid_to_tokens(x, self.grid)
