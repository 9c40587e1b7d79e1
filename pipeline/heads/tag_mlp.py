"""Seed 004's MLP over an image's noisy user tags (a multi-hot vector of the tag vocabulary).

A plain MLP because the input is noise-heavy bag-of-tags ("Canada", "Kit" on a cat photo): it
should learn which tags are evidence for which labels, not any order or structure among them.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.heads.config import HeadsConfig
from pipeline.heads.registry import register


class TagMLP(nn.Module):
    def __init__(self, n_tags: int, n_classes: int, hidden: int, dropout: float):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(n_tags, hidden), nn.ReLU(), nn.Dropout(dropout),
                                    nn.Linear(hidden, n_classes))

    def forward(self, tags: torch.Tensor) -> torch.Tensor:  # [B, T] 0/1 -> logits [B, C]
        return self.layers(tags)


@register("tag_mlp")
def build(config: HeadsConfig, in_dim: int, out_dim: int) -> TagMLP:
    return TagMLP(in_dim, out_dim, config.tag_hidden, config.tag_dropout)
