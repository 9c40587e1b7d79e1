"""Frozen vision backbones. Adding one: a new file that calls ``register``, plus one import line here."""

from pipeline.encoders.registry import available_encoders, build_encoder
from pipeline.encoders import tiny  # noqa: F401  (registers tiny-cnn)
from pipeline.encoders import resnet  # noqa: F401  (resnet18, resnet34, resnet50, resnet101, resnet152)
from pipeline.encoders import alexnet  # noqa: F401  (alexnet)
from pipeline.encoders import squeezenet  # noqa: F401  (squeezenet1_1)
from pipeline.encoders import densenet  # noqa: F401  (densenet121)
from pipeline.encoders import vgg  # noqa: F401  (vgg19)
from pipeline.encoders import clip  # noqa: F401  (clip-vit-b-32, clip-vit-b-16, clip-vit-l-14)
from pipeline.encoders import efficientnet_lite  # noqa: F401  (efficientnet_lite0)
from pipeline.encoders import fasterrcnn_regions  # noqa: F401  (fasterrcnn_regions: detected boxes as tokens)

__all__ = ["available_encoders", "build_encoder"]
