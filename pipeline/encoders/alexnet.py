"""torchvision AlexNet (seed 002): the grid is the last conv layer after its ReLU, before the final
max-pool: 13 x 13 x 256 at 224 px (169 cells), the finest map the network has before pooling."""

from __future__ import annotations

from functools import partial

from pipeline.encoders.registry import register
from pipeline.encoders.torchvision_backbone import FeaturesTrunk

register("alexnet", default_weights="DEFAULT")(partial(FeaturesTrunk, "alexnet", 256, "features.11", True))
