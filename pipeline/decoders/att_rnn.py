"""Show, Attend and Tell: an LSTM (or GRU) that attends over the feature grid at every word.

Xu et al. 2015 and seed 002: the initial state comes from the mean grid feature, a gating scalar
beta = sigmoid(f(h)) scales the attended context, and doubly stochastic regularisation pushes the
attention, summed over time, to cover every cell about once.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.decoders.attention import SoftAttention
from pipeline.decoders.base import DecoderOutput, RecurrentDecoder, State
from pipeline.decoders.config import DecoderConfig
from pipeline.decoders.grid import GridEncoder
from pipeline.decoders.registry import register


class AttentionRNN(RecurrentDecoder):
    def __init__(self, config: DecoderConfig, feature_dim: int, n_tokens: int, vocab_size: int, cell: str):
        super().__init__()
        self.vocab_size = vocab_size
        self.cell_type = cell
        self.grid = GridEncoder(config, feature_dim, n_tokens)
        d, h = self.grid.out_dim, config.hidden_dim
        self.embedding = nn.Embedding(vocab_size, config.embed_dim)
        self.attention = SoftAttention(d, h, config.attention_dim)
        self.gate = nn.Linear(h, d)
        cell_cls = nn.LSTMCell if cell == "lstm" else nn.GRUCell
        self.cell = cell_cls(config.embed_dim + d, h)
        self.init_h = nn.Linear(d, h)
        self.init_c = nn.Linear(d, h) if cell == "lstm" else None
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(h, vocab_size)
        self.attention_reg = config.attention_reg

    def init_state(self, features: torch.Tensor) -> State:
        feats = self.grid(features)  # [B, L, d]
        mean = feats.mean(1)  # [B, d]
        state = {"feats": feats, "projected": self.attention.project_features(feats), "h": torch.tanh(self.init_h(mean))}
        if self.init_c is not None:
            state["c"] = torch.tanh(self.init_c(mean))
        return state

    def step_hidden(self, state: State, tokens: torch.Tensor) -> tuple[torch.Tensor, State]:
        emb = self.embedding(tokens)  # [B, E]
        context, alpha = self.attention(state["feats"], state["projected"], state["h"])  # [B, d], [B, L]
        context = torch.sigmoid(self.gate(state["h"])) * context  # gating scalar per channel, [B, d]
        x = torch.cat([emb, context], -1)  # [B, E + d]
        new = dict(state, alpha=alpha)
        if self.cell_type == "lstm":
            new["h"], new["c"] = self.cell(x, (state["h"], state["c"]))
        else:
            new["h"] = self.cell(x, state["h"])
        return new["h"], new  # [B, H]

    def regularization(self, output: DecoderOutput, mask: torch.Tensor) -> torch.Tensor:
        if not self.attention_reg or output.attention is None:
            return super().regularization(output, mask)
        coverage = (output.attention * mask.unsqueeze(-1)).sum(1)  # [B, L]
        return self.attention_reg * ((1.0 - coverage) ** 2).mean()


@register("att_lstm")
def build_att_lstm(config: DecoderConfig, feature_dim: int, n_tokens: int, vocab_size: int) -> AttentionRNN:
    return AttentionRNN(config, feature_dim, n_tokens, vocab_size, "lstm")


@register("att_gru")
def build_att_gru(config: DecoderConfig, feature_dim: int, n_tokens: int, vocab_size: int) -> AttentionRNN:
    return AttentionRNN(config, feature_dim, n_tokens, vocab_size, "gru")
