"""torchvision VGG-19: the grid is conv5_4 after its ReLU, before the last max-pool: 14 x 14 x 512 at 224 px.

That is the layer Show, Attend and Tell (Xu et al., 2015) attended over: 196 cells of 512 channels,
finer than the 7 x 7 after the pool, which is what soft attention benefits from.
"""

from __future__ import annotations

from functools import partial

from pipeline.encoders.registry import register
from pipeline.encoders.torchvision_backbone import FeaturesTrunk

register("vgg19", default_weights="DEFAULT")(partial(FeaturesTrunk, "vgg19", 512, "conv5_4", True))
