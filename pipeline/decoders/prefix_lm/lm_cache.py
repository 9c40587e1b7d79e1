"""A ``transformers`` causal LM's key/value cache as decoding state, across library versions.

Decoding strategies reorder a state by ``select_state`` (index_select on dim 0 of every tensor),
so the cache lives in the state as plain tensors, ``k<l>`` / ``v<l>`` [B, heads, t, d_head] per
layer (batch first in every version), and is wrapped into the library's ``DynamicCache`` only for
the one forward call of a step. Beam search's reordering is then the generic one every other
decoder uses, not the cache's own ``reorder_cache``.

Versions differ in three places, each handled here: the forward argument (``cache`` from
transformers 5.x, ``past_key_values`` before), how a cache exposes its tensors (``layers[i].keys``
from 4.56, ``key_cache[i]`` before, tuples before 4.36) and how an empty one is built.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from pipeline.optional import require

State = dict[str, torch.Tensor]


def cache_argument(lm: nn.Module) -> str:
    """The keyword this model's forward takes its key/value cache by."""
    return "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"


def to_cache(state: State, layers: int):
    """The ``k<l>``/``v<l>`` tensors of ``state`` -> a ``DynamicCache`` holding them."""
    cache = require("transformers").DynamicCache()
    for i in range(layers):
        cache.update(state[f"k{i}"], state[f"v{i}"], i)
    return cache


def from_cache(cache, layers: int) -> State:
    """A cache returned by the model -> ``k<l>``/``v<l>`` state tensors."""
    state: State = {}
    for i in range(layers):
        if hasattr(cache, "layers"):
            k, v = cache.layers[i].keys, cache.layers[i].values
        elif hasattr(cache, "key_cache"):
            k, v = cache.key_cache[i], cache.value_cache[i]
        else:  # the legacy tuple of (key, value) per layer
            k, v = cache[i]
        state[f"k{i}"], state[f"v{i}"] = k, v
    return state


def returned_cache(output):
    """The cache a forward call returned (``cache`` or ``past_key_values`` on its output)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values
