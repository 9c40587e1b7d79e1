"""The language model itself, built from its ``transformers`` config alone (no files, no hub).

A run's config.json records the LM's full config (``model.lm_resolved``), so loading a trained
run rebuilds the architecture here offline and its checkpoint supplies every weight, pretrained
or not. ``scratch_config`` is the small GPT-2 the CPU presets and tests train from nothing.
"""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from pipeline.data.subword import LmTokens
from pipeline.decoders.config import DecoderConfig
from pipeline.optional import require

MAX_POSITIONS = 128  # prefix (up to ~50 grid tokens) plus the longest caption


def scratch_config(config: DecoderConfig, vocab_size: int, bos: int, eos: int) -> dict:
    """A GPT-2 of ``lm_layers`` x ``hidden_dim`` (heads, ff_dim, dropout from the decoder config).

    Trained from nothing, it needs none of GPT-2's pretrained conventions, so it uses the exact
    GELU (one fused kernel; the tanh approximation is six element-wise passes on CPU)."""
    return require("transformers").GPT2Config(vocab_size=vocab_size, n_positions=MAX_POSITIONS, n_embd=config.hidden_dim,
                      n_layer=config.lm_layers, n_head=config.heads, n_inner=config.ff_dim,
                      resid_pdrop=config.dropout, embd_pdrop=config.dropout, attn_pdrop=config.dropout,
                      activation_function="gelu",  # exact GELU: PyTorch's fused kernel, not GPT-2's tanh formula
                      bos_token_id=bos, eos_token_id=eos).to_dict()


def resolve_lm(config: DecoderConfig, lm_config: dict, tokens: LmTokens) -> DecoderConfig:
    """``config`` with ``lm_resolved`` set: what ``PrefixLM`` is built from."""
    return replace(config, lm_resolved={"config": lm_config, "tokens": vars(tokens)})


def with_scratch_lm(config: DecoderConfig, tokens: LmTokens) -> DecoderConfig:
    """``config`` resolved to a scratch GPT-2 over ``tokens.size`` ids."""
    return resolve_lm(config, scratch_config(config, tokens.size, tokens.bos, tokens.eos), tokens)


def build_language_model(lm_config: dict) -> nn.Module:
    """A causal LM with fresh weights from a config dict (``PretrainedConfig.to_dict()``)."""
    transformers = require("transformers")
    fields = dict(lm_config)
    config = transformers.AutoConfig.for_model(fields.pop("model_type"), **fields)
    return transformers.AutoModelForCausalLM.from_config(config)


def layer_count(lm: nn.Module) -> int:
    return lm.config.num_hidden_layers
