"""Transformer caption decoder over (projected, position-encoded, optionally self-attended) grid
features: seed 000's ResNet+Transformer and CLIP+Transformer. Pre-norm layers train stably
without a long warm-up; tied input/output embeddings are an option.

Teacher forcing is exact and parallel here (a causal mask), so ``teacher_forcing`` < 1 does not
apply. Decoding is incremental (``kv_cache``): each step runs one token through the layers against
cached keys and values, and the memory's cross-attention keys and values are computed once per
image, so a caption costs T token passes instead of T(T+1)/2.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pipeline.decoders.base import CaptionDecoder, DecoderOutput, State, followed_by_target, logits_where
from pipeline.decoders.config import DecoderConfig
from pipeline.decoders.grid import GridEncoder
from pipeline.decoders.kv_cache import cross_attention_cache, decode_one_token
from pipeline.decoders.registry import register

MAX_POSITIONS = 128


class TransformerCaptioner(CaptionDecoder):
    def __init__(self, config: DecoderConfig, feature_dim: int, n_tokens: int, vocab_size: int):
        super().__init__()
        d = config.hidden_dim
        self.vocab_size = vocab_size
        self.grid = GridEncoder(config, feature_dim, n_tokens)
        self.memory_proj = nn.Linear(self.grid.out_dim, d) if self.grid.out_dim != d else nn.Identity()
        self.embedding = nn.Embedding(vocab_size, d)
        # Vaswani et al. scale embeddings by sqrt(d) because they start small (fairseq: std d^-0.5);
        # PyTorch's N(0, 1) would make them sqrt(d) times larger than the positions and, tied, the
        # first logits' std ~sqrt(d) (initial cross-entropy ~500 instead of ln V)
        nn.init.normal_(self.embedding.weight, std=d ** -0.5)
        self.register_buffer("positions", _sinusoids(MAX_POSITIONS, d), persistent=False)  # [P, d]
        layer = nn.TransformerDecoderLayer(d, config.heads, config.ff_dim, config.dropout, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, config.num_layers)
        self.norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(d, vocab_size)
        if config.tie_embeddings:
            self.out.weight = self.embedding.weight
        self.scale = math.sqrt(d)

    def memory(self, features: torch.Tensor) -> torch.Tensor:  # [B, L, D] -> [B, L, d]
        return self.memory_proj(self.grid(features))

    def forward(self, features: torch.Tensor, tokens: torch.Tensor, teacher_forcing: float = 1.0,
                image_index: torch.Tensor | None = None) -> DecoderOutput:
        memory = self.memory(features)  # [K, L, d], once per image
        if image_index is not None:
            memory = memory.index_select(0, image_index)  # [B, L, d]
        return DecoderOutput(self._logits(memory, tokens))

    def init_state(self, features: torch.Tensor) -> State:
        memory = self.memory(features)  # [B, L, d]
        return cross_attention_cache(self.decoder.layers, memory)  # per layer: memory keys/values, empty self-cache

    def step(self, state: State, tokens: torch.Tensor) -> tuple[torch.Tensor, State]:
        position = state["k0"].size(2)  # tokens already decoded
        x = self.embedding(tokens).unsqueeze(1) * self.scale + self.positions[position]  # [B, 1, d]
        y, state = decode_one_token(self.decoder.layers, x, state)  # [B, 1, d]
        return self.out(self.norm(y))[:, 0].log_softmax(-1), state  # [B, V]

    def _logits(self, memory: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.size(1)  # tokens [B, T]
        x = self.dropout(self.embedding(tokens) * self.scale + self.positions[:length])  # [B, T, d]
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=tokens.device, dtype=x.dtype)
        y = self.decoder(x, memory, tgt_mask=causal, tgt_is_causal=True)  # [B, T, d]
        return logits_where(lambda h: self.out(self.norm(h)), y, followed_by_target(tokens))  # [B, T, V]


def _sinusoids(length: int, dim: int) -> torch.Tensor:
    pos = torch.arange(length).unsqueeze(1)  # [P, 1]
    freq = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))  # [d/2]
    table = torch.zeros(length, dim)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return table


@register("transformer")
def build_transformer(config: DecoderConfig, feature_dim: int, n_tokens: int, vocab_size: int) -> TransformerCaptioner:
    return TransformerCaptioner(config, feature_dim, n_tokens, vocab_size)
