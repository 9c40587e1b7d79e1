"""A visual classifier that pools the grid with learned attention instead of a plain mean.

Small objects (a ball, a hat) fill a few grid cells; a mean over 49 cells dilutes them, while a
few learned queries can each look where their kind of concept tends to be. The queries' pooled
vectors are concatenated and classified by one linear layer.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.heads.config import HeadsConfig
from pipeline.heads.registry import register


class AttentionVisualHead(nn.Module):
    def __init__(self, feature_dim: int, n_classes: int, queries: int, attention_dim: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(feature_dim)
        self.score = nn.Sequential(nn.Linear(feature_dim, attention_dim), nn.Tanh(), nn.Linear(attention_dim, queries))
        self.dropout = nn.Dropout(dropout)
        self.classify = nn.Linear(queries * feature_dim, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # [B, L, D] -> logits [B, C]
        x = self.norm(features)  # [B, L, D]
        weights = self.score(x).softmax(dim=1)  # [B, L, Q], each query's distribution over the grid
        pooled = torch.einsum("blq,bld->bqd", weights, x).flatten(1)  # [B, Q * D]
        return self.classify(self.dropout(pooled))


@register("visual_attention")
def build(config: HeadsConfig, in_dim: int, out_dim: int) -> AttentionVisualHead:
    return AttentionVisualHead(in_dim, out_dim, config.attention_queries, config.attention_dim, config.visual_dropout)
