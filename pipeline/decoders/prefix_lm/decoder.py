"""Prefix language-model captioning (seed 003's GPT-2 decoder; ClipCap, Mokady et al. 2021).

A mapping network turns the cached features into k embeddings in the LM's input space and the
causal LM reads them as the start of its sequence:

    layout "prefix"  (ClipCap):  p_1 .. p_k, <start>, w_1 .. w_n   (<start> is fed as the LM's bos)
    layout "seed003" (seed 003): <bos>, p_1 .. p_k, <sep>, w_1 .. w_n

so the image conditions every word through self-attention only; there is no cross-attention.
The LM is any ``transformers`` causal LM (GPT-2 family by default), frozen or fine-tuned; its
tokens are the vocabulary's (``pipeline.data.subword``), mapped to the LM's own ids by ``lm_ids``.

Training runs the mapper and the LM's prefix positions once per image (their keys and values do
not depend on the caption), then every caption's tokens at once against them. Decoding keeps
the LM's key/value cache in the state (``lm_cache``), so a step feeds one token; with
``lm_kv_cache`` off every step reruns prefix and caption, for comparison.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.data.subword import LmTokens
from pipeline.data.vocab import START_ID
from pipeline.decoders.base import CaptionDecoder, DecoderOutput, State, select_state
from pipeline.decoders.config import DecoderConfig
from pipeline.decoders.prefix_lm.language_model import build_language_model, layer_count
from pipeline.decoders.prefix_lm.lm_cache import cache_argument, from_cache, returned_cache, to_cache
from pipeline.decoders.prefix_lm.mappers import build_mapper
from pipeline.errors import CapcacheError

LAYOUTS = ("prefix", "seed003")
DEAD_LOGIT = -1e4  # ids that stand for no LM token get no probability (finite: label smoothing averages log p)


class PrefixLM(CaptionDecoder):
    def __init__(self, config: DecoderConfig, feature_dim: int, n_tokens: int, vocab_size: int):
        super().__init__()
        if not config.lm_resolved:
            raise CapcacheError("prefix_lm needs model.lm_resolved (the LM's config and special ids), which "
                                "`capcache train` fills when a run starts; start the run through it")
        if config.layout not in LAYOUTS:
            raise CapcacheError(f"unknown model.layout {config.layout!r}; use {' or '.join(LAYOUTS)}")
        tokens = LmTokens(**config.lm_resolved["tokens"])
        lm_ids = tokens.lm_ids()  # [V] vocabulary id -> LM id
        if len(lm_ids) != vocab_size:
            raise CapcacheError(f"prefix_lm: the vocabulary has {vocab_size} ids but its LM mapping {len(lm_ids)}")
        self.vocab_size = vocab_size
        self.lm = build_language_model(config.lm_resolved["config"])
        self.layers = layer_count(self.lm)
        self.cache_arg = cache_argument(self.body)
        self.kv_cache = config.lm_kv_cache
        self.layout = config.layout
        self.frozen = config.lm_frozen
        if self.frozen:
            self.lm.requires_grad_(False)
        self.mapper = build_mapper(config, feature_dim, n_tokens, self.lm.get_input_embeddings().embedding_dim)
        if config.layout == "seed003":
            lm_ids[START_ID] = tokens.sep  # <start> is fed as <sep>, after <bos> and the prefix
        self.register_buffer("lm_ids", torch.tensor(lm_ids), persistent=False)  # [V]
        self.register_buffer("bos", torch.tensor([tokens.bos]), persistent=False)  # [1]
        dead = torch.zeros(vocab_size, dtype=torch.bool)
        dead[tokens.dead_ids()] = True
        self.register_buffer("dead", dead, persistent=False)  # [V]
        self.identity = not tokens.offset  # vocabulary ids are the LM's own
        # GPT-2's output layer is its tied input embedding, without a bias; one per id lets a fresh
        # LM learn word frequencies directly (zero at the start: a pretrained LM's own distribution)
        self.logit_bias = nn.Parameter(torch.zeros(vocab_size))  # [V]

    def train(self, mode: bool = True) -> "PrefixLM":
        """A frozen LM stays in eval mode (no dropout), as ClipCap's prefix-only model keeps GPT-2."""
        super().train(mode)
        if self.frozen:
            self.lm.eval()
        return self

    @property
    def body(self) -> nn.Module:  # the LM without its output layer: hidden states and the cache
        return self.lm.base_model

    @property
    def head(self) -> nn.Module:  # hidden [..., d] -> LM logits [..., V_lm]
        return self.lm.get_output_embeddings()

    def prefix(self, features: torch.Tensor) -> torch.Tensor:  # [K, L, D] -> [K, P, d]
        p = self.mapper(features)  # [K, k, d]
        if self.layout == "seed003":
            p = torch.cat([self.embed(self.bos.expand(p.size(0), 1)), p], 1)  # [K, 1 + k, d]
        return p

    def embed(self, lm_ids: torch.Tensor) -> torch.Tensor:  # [...] LM ids -> [..., d]
        return self.lm.get_input_embeddings()(lm_ids)

    def vocab_logits(self, lm_logits: torch.Tensor) -> torch.Tensor:  # [..., V_lm] -> [..., V]
        if self.identity:
            return lm_logits + self.logit_bias
        return (lm_logits.index_select(-1, self.lm_ids) + self.logit_bias).masked_fill(self.dead, DEAD_LOGIT)

    def forward(self, features: torch.Tensor, tokens: torch.Tensor, teacher_forcing: float = 1.0,
                image_index: torch.Tensor | None = None) -> DecoderOutput:
        # The prefix positions never see the caption (causal attention), so their keys and values
        # are the same for every caption of an image: the LM runs them once per image, and each
        # caption then runs only its own tokens against them, as decoding does.
        state = self.prefix_cache(features)  # k<l>/v<l> [K, heads, P, d_head]
        if image_index is not None:
            state = select_state(state, image_index)  # [B, heads, P, d_head]
        hidden, _ = self._extend(state, self.embed(self.lm_ids[tokens]))  # [B, T, d]
        return DecoderOutput(self.vocab_logits(self.head(hidden)))  # [B, T, V]

    def prefix_cache(self, features: torch.Tensor) -> State:
        """features [K, L, D] -> the LM's keys and values over each image's prefix."""
        return self._extend(None, self.prefix(features))[1]  # k<l>/v<l> [K, heads, P, d_head]

    def _extend(self, state: State | None, embeds: torch.Tensor) -> tuple[torch.Tensor, State]:
        """The LM over embeds [B, n, d] after the cached positions of ``state`` (None: none) ->
        (their hidden states [B, n, d], the cache with them appended)."""
        cache = {self.cache_arg: to_cache(state, self.layers)} if state is not None else {}
        out = self.body(inputs_embeds=embeds, use_cache=True, **cache)
        return out.last_hidden_state, from_cache(returned_cache(out), self.layers)

    def init_state(self, features: torch.Tensor) -> State:
        if not self.kv_cache:
            return {"embeds": self.prefix(features)}  # [B, P, d]: every step reruns it
        return self.prefix_cache(features)

    def step(self, state: State, tokens: torch.Tensor) -> tuple[torch.Tensor, State]:
        x = self.embed(self.lm_ids[tokens]).unsqueeze(1)  # [B, 1, d]
        if self.kv_cache:
            hidden, new = self._extend(state, x)  # the cache grows by one position
        else:
            new = {"embeds": torch.cat([state["embeds"], x], 1)}  # [B, P + t + 1, d]
            hidden = self.body(inputs_embeds=new["embeds"], use_cache=False).last_hidden_state
        return self.vocab_logits(self.head(hidden[:, -1])).float().log_softmax(-1), new  # [B, V]
