"""The one registry of caption decoders: a decoder is one file that calls ``register``."""

from __future__ import annotations

from typing import Callable

from pipeline.decoders.base import CaptionDecoder
from pipeline.decoders.config import DecoderConfig
from pipeline.decoders.dropout import use_fast_dropout
from pipeline.errors import CapcacheError

# name -> builder(config, feature_dim, n_tokens, vocab_size)
_BUILDERS: dict[str, Callable[[DecoderConfig, int, int, int], CaptionDecoder]] = {}


def register(name: str) -> Callable:
    def wrap(builder: Callable) -> Callable:
        if name in _BUILDERS:
            raise RuntimeError(f"decoder {name!r} registered twice")
        _BUILDERS[name] = builder
        return builder
    return wrap


def available_decoders() -> list[str]:
    return sorted(_BUILDERS)


def build_decoder(name: str, config: DecoderConfig, feature_dim: int, n_tokens: int, vocab_size: int) -> CaptionDecoder:
    if name not in _BUILDERS:
        raise CapcacheError(f"unknown decoder {name!r}; available: {', '.join(available_decoders())}")
    return use_fast_dropout(_BUILDERS[name](config, feature_dim, n_tokens, vocab_size))
