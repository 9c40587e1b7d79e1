"""LP (seed 004): one linear layer from v = [vf, tf], the visual and tag heads' probabilities, to
the final label logits. One layer suffices: it learns how far to trust each modality per label."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.heads.config import HeadsConfig
from pipeline.heads.registry import register


class LabelPredictor(nn.Module):
    def __init__(self, in_dim: int, n_classes: int):
        super().__init__()
        self.combine = nn.Linear(in_dim, n_classes)

    def forward(self, v: torch.Tensor) -> torch.Tensor:  # [B, C * modalities] probabilities -> logits [B, C]
        return self.combine(v)


@register("label_predictor")
def build(config: HeadsConfig, in_dim: int, out_dim: int) -> LabelPredictor:
    return LabelPredictor(in_dim, out_dim)
