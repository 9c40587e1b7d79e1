"""One typed config for every decoder: each reads the fields it needs, so the CLI and JSON files
override any of them the same way, and a run's config.json rebuilds its model exactly."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DecoderConfig:
    embed_dim: int = 256  # word embedding size (seed 001: 256)
    hidden_dim: int = 512  # RNN hidden size / transformer d_model (seed 001: 512)
    attention_dim: int = 512  # additive attention's inner size (Show, Attend and Tell)
    num_layers: int = 1  # RNN layers (show_tell: seed 001 uses 2) / transformer decoder layers
    dropout: float = 0.5
    attention_reg: float = 1.0  # weight of doubly stochastic attention regularisation (Xu et al.: 1)
    # Optional processing of the cached grid before decoding (seed 000): norm, projection, positions, encoder
    feature_norm: str = "none"  # "none" | "layernorm" (per cell) | "batchnorm" (per channel, running stats)
    feature_proj: str = "none"  # "none" | "linear" | "conv" (1x1 conv over the grid)
    proj_dim: int = 512  # size after projection
    grid_encoder_layers: int = 0  # Transformer encoder layers over the grid; 0 = none
    heads: int = 8
    ff_dim: int = 2048
    tie_embeddings: bool = False  # transformer: share input embedding and output projection
    glove_path: str | None = None  # initialise word embeddings from a local GloVe text file
    freeze_embeddings: bool = False
