"""Mapping networks: cached image features -> k prefix embeddings in the language model's input space.

* ``linear`` (seed 003: "a trainable projection layer" after the frozen ResNet-18): the pooled
  feature through Linear(D, k*d), k embeddings (seed 003: k = 1).
* ``mlp`` (ClipCap's MLP mapper, used with a fine-tuned LM): the pooled feature through
  Linear(D, k*d/2) - Tanh - Linear(k*d/2, k*d), reshaped to k embeddings; one vector in, so the
  LM sees the image as a whole (seed 003's single image embedding at k = 1).
* ``transformer`` (ClipCap's Transformer mapper, used with a frozen LM): k learned queries read the
  whole grid (or CLIP's tokens) in a small Transformer encoder over [cells; queries], and their
  outputs are the prefix: the "several image embeddings" seed 003 plans, each free to attend to
  different cells. ClipCap's version reads one CLIP vector projected to k tokens; reading the
  grid keeps the spatial features this cache stores.
* ``grid``: every cell of the (projected, position-encoded, optionally grid-encoded) grid is one
  prefix embedding, so each word attends over all cells, as a cross-attention decoder does; the
  LM's layers then also relate the cells to each other. The prefix is as long as the grid (49 for
  a 7 x 7 cache); ``prefix_len`` does not apply. Training runs the prefix once per image, not
  once per caption, so the longer prefix costs little.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.decoders.config import DecoderConfig
from pipeline.decoders.grid import GridEncoder, feature_norm
from pipeline.errors import CapcacheError

MAPPERS = ("linear", "mlp", "transformer", "grid")


class PooledMapper(nn.Module):
    """The mean of the (normalised) grid -> k embeddings, by one linear layer or ClipCap's MLP."""

    def __init__(self, config: DecoderConfig, feature_dim: int, width: int, hidden: bool):
        super().__init__()
        k = config.prefix_len
        self.k, self.width = k, width
        self.norm = feature_norm(config.feature_norm, feature_dim)
        self.net = nn.Sequential(nn.Linear(feature_dim, k * width // 2), nn.Tanh(), nn.Linear(k * width // 2, k * width)) \
            if hidden else nn.Linear(feature_dim, k * width)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # [B, L, D] -> [B, k, d]
        pooled = self.norm(features).mean(1)  # [B, D]
        return self.net(pooled).view(-1, self.k, self.width)


class GridMapper(nn.Module):
    """Every (projected, position-encoded, optionally grid-encoded) cell -> one prefix embedding."""

    def __init__(self, config: DecoderConfig, feature_dim: int, n_tokens: int, width: int):
        super().__init__()
        if config.feature_proj == "none":
            raise CapcacheError(f"mapper={config.mapper} needs model.feature_proj linear or conv (its width is model.proj_dim)")
        self.grid = GridEncoder(config, feature_dim, n_tokens)  # norm, projection, positions, optional encoder
        self.norm = nn.LayerNorm(self.grid.out_dim)  # pre-norm layers leave the residual stream unnormalised
        self.out = nn.Linear(self.grid.out_dim, width)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # [B, L, D] -> [B, L, d_lm]
        return self.out(self.norm(self.grid(features)))


class TransformerMapper(GridMapper):
    """The grid mapper's cells read by k learned queries; the queries' outputs are the prefix."""

    def __init__(self, config: DecoderConfig, feature_dim: int, n_tokens: int, width: int):
        super().__init__(config, feature_dim, n_tokens, width)
        d = self.grid.out_dim
        self.queries = nn.Parameter(torch.randn(1, config.prefix_len, d) * 0.02)  # [1, k, d]
        layer = nn.TransformerEncoderLayer(d, config.heads, config.ff_dim, config.dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.mapper_layers, enable_nested_tensor=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # [B, L, D] -> [B, k, d_lm]
        cells = self.grid(features)  # [B, L, d]
        k = self.queries.size(1)
        x = self.encoder(torch.cat([cells, self.queries.expand(cells.size(0), -1, -1)], 1))  # [B, L+k, d]
        return self.out(self.norm(x[:, -k:]))  # [B, k, d_lm]


def build_mapper(config: DecoderConfig, feature_dim: int, n_tokens: int, width: int) -> nn.Module:
    if config.mapper in ("linear", "mlp"):
        return PooledMapper(config, feature_dim, width, hidden=config.mapper == "mlp")
    if config.mapper == "transformer":
        return TransformerMapper(config, feature_dim, n_tokens, width)
    if config.mapper == "grid":
        return GridMapper(config, feature_dim, n_tokens, width)
    raise CapcacheError(f"unknown model.mapper {config.mapper!r}; use {' or '.join(MAPPERS)}")
