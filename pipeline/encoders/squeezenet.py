"""torchvision SqueezeNet 1.1 (seed 002): the grid is the output of the last Fire module,
13 x 13 x 512 at 224 px, before the classifier's dropout and 1 x 1 convolution."""

from __future__ import annotations

from functools import partial

from pipeline.encoders.registry import register
from pipeline.encoders.torchvision_backbone import FeaturesTrunk

register("squeezenet1_1", default_weights="DEFAULT")(partial(FeaturesTrunk, "squeezenet1_1", 512, "features", False))
