"""The one registry of tagging heads: a head is one file that calls ``register``.

A builder gets the config, its input size (the feature size for visual heads, which read the
grid [B, L, D]; the vector size for the others, which read [B, in_dim]) and its output size.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from pipeline.errors import CapcacheError
from pipeline.heads.config import HeadsConfig

_BUILDERS: dict[str, Callable[[HeadsConfig, int, int], nn.Module]] = {}


def register(name: str) -> Callable:
    def wrap(builder: Callable) -> Callable:
        if name in _BUILDERS:
            raise RuntimeError(f"head {name!r} registered twice")
        _BUILDERS[name] = builder
        return builder
    return wrap


def available_heads() -> list[str]:
    return sorted(_BUILDERS)


def build_head(name: str, config: HeadsConfig, in_dim: int, out_dim: int) -> nn.Module:
    if name not in _BUILDERS:
        raise CapcacheError(f"unknown head {name!r}; available: {', '.join(available_heads())}")
    return _BUILDERS[name](config, in_dim, out_dim)
