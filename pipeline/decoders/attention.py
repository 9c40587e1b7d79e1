"""Additive (Bahdanau) soft attention over grid cells, as in Show, Attend and Tell."""

from __future__ import annotations

import torch
from torch import nn


class SoftAttention(nn.Module):
    def __init__(self, feature_dim: int, hidden_dim: int, attention_dim: int):
        super().__init__()
        self.feature_proj = nn.Linear(feature_dim, attention_dim)
        self.hidden_proj = nn.Linear(hidden_dim, attention_dim)
        self.score = nn.Linear(attention_dim, 1)

    def project_features(self, features: torch.Tensor) -> torch.Tensor:
        """[B, L, D] -> [B, L, A]; done once per image, not once per word."""
        return self.feature_proj(features)

    def forward(self, features: torch.Tensor, projected: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # features [B, L, D], projected [B, L, A], hidden [B, H]
        scores = self.score(torch.tanh(projected + self.hidden_proj(hidden).unsqueeze(1))).squeeze(-1)  # [B, L]
        alpha = scores.softmax(-1)  # [B, L]
        context = torch.bmm(alpha.unsqueeze(1), features).squeeze(1)  # [B, D]
        return context, alpha
