"""One typed config for every decoder: each reads the fields it needs, so the CLI and JSON files
override any of them the same way, and a run's config.json rebuilds its model exactly."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    # what tells the tokens apart (decoders that attend over them): "learned" (one learned vector per slot, added
    # after a projection) | "boxes" (region caches: each token's last 5 numbers are its box, embedded and added
    # instead; they are not fed as features) | "none"
    token_positions: str = "learned"
    heads: int = 8
    ff_dim: int = 2048
    tie_embeddings: bool = False  # transformer: share input embedding and output projection
    glove_path: str | None = None  # initialise word embeddings from a local GloVe text file
    freeze_embeddings: bool = False
    inject: str = "init"  # show_tell: "init" (image sets the initial state) | "first_word" (fed as input at t = 0)
    # prefix_lm (seed 003, ClipCap): a causal LM reads k prefix embeddings mapped from the image
    lm: str = "scratch"  # "scratch" (a GPT-2 of hidden_dim x lm_layers trained here) | a Hugging Face name (gpt2) | a local folder
    lm_layers: int = 4  # scratch LM depth (width hidden_dim, heads, ff_dim, dropout as above)
    lm_frozen: bool = False  # keep the LM's weights fixed (ClipCap's Transformer-mapper setting)
    lm_kv_cache: bool = True  # decode one token per step against cached keys/values (False: rerun the whole sequence)
    bpe_vocab: int = 4000  # ids of the byte-level BPE trained on the train captions (scratch LM only)
    prefix_len: int = 10  # k prefix embeddings (ClipCap: 10)
    mapper: str = "mlp"  # "linear" | "mlp" (pooled feature) | "transformer" (k learned queries) | "grid" (every cell)
    mapper_layers: int = 2  # Transformer mapper depth (width proj_dim)
    layout: str = "prefix"  # "prefix" (ClipCap: prefix, <start>, caption) | "seed003" (<bos>, prefix, <sep>, caption)
    lm_resolved: dict = field(default_factory=dict)  # set when a run starts: the LM's full config and special ids
