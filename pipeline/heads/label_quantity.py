"""LQP (seed 004): how many labels an image has, regressed from v = [vf, tf].

Regression rather than classification over counts (the seed's choice), with dropout 0.5 because
such regressors overfit fast. The target is the count normalised by the train set's mean and
spread (seed: normalising speeds up and steadies convergence); ``Tagger`` turns it back into k.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.heads.config import HeadsConfig
from pipeline.heads.registry import register


class LabelQuantity(nn.Module):
    def __init__(self, in_dim: int, hidden: int, dropout: float):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, v: torch.Tensor) -> torch.Tensor:  # [B, in_dim] -> normalised count [B]
        return self.layers(v).squeeze(-1)


@register("label_quantity")
def build(config: HeadsConfig, in_dim: int, out_dim: int) -> LabelQuantity:
    return LabelQuantity(in_dim, config.quantity_hidden, config.quantity_dropout)
