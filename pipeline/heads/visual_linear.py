"""VCNN's classifier on a frozen backbone: mean-pool the grid, normalise, one linear layer.

Seed 004 fine-tunes ResNeXt-101 with an adapted classifier; from a cache the backbone is frozen
(its second option, "fit the classifier only"), so the classifier is all that trains.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.heads.config import HeadsConfig
from pipeline.heads.registry import register


class LinearVisualHead(nn.Module):
    def __init__(self, feature_dim: int, n_classes: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(feature_dim)  # cached features differ in scale between encoders
        self.dropout = nn.Dropout(dropout)
        self.classify = nn.Linear(feature_dim, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # [B, L, D] -> logits [B, C]
        pooled = self.norm(features.mean(dim=1))  # [B, D]
        return self.classify(self.dropout(pooled))


@register("visual_linear")
def build(config: HeadsConfig, in_dim: int, out_dim: int) -> LinearVisualHead:
    return LinearVisualHead(in_dim, out_dim, config.visual_dropout)
