"""Optional processing of cached grid features before a decoder reads them (seed 000).

"CNN -> Adaptive Pool -> Linear/Conv Proj -> PosEnc -> Transformer Encoder": the cache already
holds the pooled grid, so this module covers projection, positions and a small Transformer encoder
that lets grid cells exchange context. With everything off it is identity.

Positions (``token_positions``): a grid cell is known by its slot, so "learned" adds one learned
vector per slot (after a projection, as seed 000 does). Region tokens (fasterrcnn_regions) are boxes
in score order, whose slot says little about where they are: "boxes" splits each token's last
``BOX_GEOMETRY`` numbers (x1/W, y1/H, x2/W, y2/H, area share) off the features and adds a learned
linear embedding of them instead, with or without a projection. Training checks that the cache's
tokens do end in box geometry (``pipeline.training.cache_use``); a model knows only the numbers.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.decoders.config import DecoderConfig
from pipeline.errors import CapcacheError

TOKEN_POSITIONS = ("learned", "boxes", "none")
BOX_GEOMETRY = 5  # numbers at the end of every region token that "boxes" reads as its box


class GridEncoder(nn.Module):
    def __init__(self, config: DecoderConfig, feature_dim: int, n_tokens: int):
        super().__init__()
        if config.token_positions not in TOKEN_POSITIONS:
            raise CapcacheError(f"unknown model.token_positions {config.token_positions!r}; "
                                f"use {', '.join(TOKEN_POSITIONS)}")
        boxes = config.token_positions == "boxes"
        if boxes:
            if feature_dim <= BOX_GEOMETRY:
                raise CapcacheError(f"model.token_positions=boxes needs tokens of features plus {BOX_GEOMETRY} "
                                    f"box numbers, not {feature_dim} numbers")
            feature_dim -= BOX_GEOMETRY  # what remains is the features
        self.out_dim = feature_dim
        self.norm = feature_norm(config.feature_norm, feature_dim)
        self.proj: nn.Module = nn.Identity()
        if config.feature_proj == "linear":
            self.proj = nn.Sequential(nn.Linear(feature_dim, config.proj_dim), nn.ReLU(), nn.Dropout(config.dropout))
        elif config.feature_proj == "conv":  # a 1x1 convolution over the grid cells
            self.proj = nn.Sequential(_Conv1x1(feature_dim, config.proj_dim), nn.ReLU(), nn.Dropout(config.dropout))
        elif config.feature_proj != "none":
            raise CapcacheError(f"unknown feature_proj {config.feature_proj!r}; use none, linear or conv")
        if config.feature_proj != "none":
            self.out_dim = config.proj_dim
        if config.grid_encoder_layers and config.feature_proj == "none":
            raise CapcacheError("grid_encoder_layers > 0 needs feature_proj linear or conv (to set the model width)")
        learned = config.token_positions == "learned" and config.feature_proj != "none"
        self.positions = nn.Parameter(torch.randn(1, n_tokens, self.out_dim) * 0.02) if learned else None
        self.box_embedding = nn.Linear(BOX_GEOMETRY, self.out_dim) if boxes else None
        self.encoder = None
        if config.grid_encoder_layers:
            layer = nn.TransformerEncoderLayer(self.out_dim, config.heads, config.ff_dim, config.dropout,
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, config.grid_encoder_layers, enable_nested_tensor=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # [B, L, D] -> [B, L, out_dim]
        if self.box_embedding is not None:
            features, boxes = features[..., :-BOX_GEOMETRY], features[..., -BOX_GEOMETRY:]  # [B, L, D - 5], [B, L, 5]
        x = self.proj(self.norm(features))
        if self.positions is not None:
            x = x + self.positions
        if self.box_embedding is not None:
            x = x + self.box_embedding(boxes)  # [B, L, out_dim]
        if self.encoder is not None:
            x = self.encoder(x)
        return x


def feature_norm(kind: str, dim: int) -> nn.Module:
    """Backbones differ wildly in feature scale (ReLU maps ~0.5, CLIP tokens ~1, random stems
    ~0.1); normalising the input lets one set of decoder hyper-parameters fit them all."""
    if kind == "none":
        return nn.Identity()
    if kind == "layernorm":
        return nn.LayerNorm(dim)
    if kind == "batchnorm":
        return _ChannelBatchNorm(dim)
    raise CapcacheError(f"unknown feature_norm {kind!r}; use none, layernorm or batchnorm")


class _ChannelBatchNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, D], normalised per channel D
        return self.bn(x.transpose(1, 2)).transpose(1, 2)


class _Conv1x1(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, C_in] -> [B, L, C_out]
        return self.conv(x.transpose(1, 2)).transpose(1, 2)
