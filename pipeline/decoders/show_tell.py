"""Show and Tell baseline (seed 001): the pooled image feature conditions a multi-layer LSTM (or
GRU) once; the decoder never looks at the image again.

``inject`` chooses how: "init" (seed 001) maps the image to the initial hidden (and cell) state;
"first_word" (Vinyals et al. 2015, seed 003's baseline) maps it to a vector of word-embedding size
and feeds it as the input of step t = -1 from a zero state, before <start>.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.decoders.base import RecurrentDecoder, State
from pipeline.decoders.config import DecoderConfig
from pipeline.decoders.registry import register
from pipeline.errors import CapcacheError

INJECT = ("init", "first_word")


class ShowTell(RecurrentDecoder):
    def __init__(self, config: DecoderConfig, feature_dim: int, vocab_size: int, cell: str):
        super().__init__()
        self.vocab_size = vocab_size
        self.cell_type = cell
        self.layers, h = config.num_layers, config.hidden_dim
        if config.inject not in INJECT:
            raise CapcacheError(f"unknown model.inject {config.inject!r}; use {' or '.join(INJECT)}")
        self.first_word = config.inject == "first_word"
        image_dim = config.embed_dim if self.first_word else h
        self.image_proj = nn.Sequential(nn.Linear(feature_dim, image_dim), nn.ReLU(), nn.Dropout(config.dropout))
        if not self.first_word:
            self.init_h = nn.Linear(h, h * self.layers)
            self.init_c = nn.Linear(h, h * self.layers) if cell == "lstm" else None
        self.embedding = nn.Embedding(vocab_size, config.embed_dim)
        rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_cls(config.embed_dim, h, num_layers=self.layers, batch_first=True,
                           dropout=config.dropout if self.layers > 1 else 0.0)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(h, vocab_size)

    def init_state(self, features: torch.Tensor) -> State:
        image = self.image_proj(features.mean(1))  # [B, L, D] -> [B, H] ("init") or [B, E] ("first_word")
        batch = image.size(0)
        if self.first_word:
            zero = image.new_zeros(batch, self.layers, self.rnn.hidden_size)  # [B, layers, H]
            state = {"h": zero, "c": zero} if self.cell_type == "lstm" else {"h": zero}
            return self._run(state, image.unsqueeze(1))[1]  # the image is the input of step -1
        state = {"h": torch.tanh(self.init_h(image)).view(batch, self.layers, -1)}  # [B, layers, H]
        if self.init_c is not None:
            state["c"] = torch.tanh(self.init_c(image)).view(batch, self.layers, -1)
        return state

    def step_hidden(self, state: State, tokens: torch.Tensor) -> tuple[torch.Tensor, State]:
        return self._run(state, self.embedding(tokens).unsqueeze(1))

    def _run(self, state: State, emb: torch.Tensor) -> tuple[torch.Tensor, State]:
        """One step with input emb [B, 1, E] -> (top hidden [B, H], next state)."""
        h = state["h"].transpose(0, 1).contiguous()  # [layers, B, H], as nn.LSTM wants it
        if self.cell_type == "lstm":
            out, (h, c) = self.rnn(emb, (h, state["c"].transpose(0, 1).contiguous()))
            new = {"h": h.transpose(0, 1), "c": c.transpose(0, 1)}
        else:
            out, h = self.rnn(emb, h)
            new = {"h": h.transpose(0, 1)}
        return out.squeeze(1), new  # [B, H]


@register("show_tell")
def build_show_tell(config: DecoderConfig, feature_dim: int, n_tokens: int, vocab_size: int) -> ShowTell:
    return ShowTell(config, feature_dim, vocab_size, "lstm")


@register("show_tell_gru")
def build_show_tell_gru(config: DecoderConfig, feature_dim: int, n_tokens: int, vocab_size: int) -> ShowTell:
    return ShowTell(config, feature_dim, vocab_size, "gru")
