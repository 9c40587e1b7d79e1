"""One-token steps through PyTorch's pre-norm ``nn.TransformerDecoderLayer``s with cached keys and values.

The layers' own weights are used (``self_attn`` / ``multihead_attn`` in-projections and
out-projections, norms, feed-forward), so a checkpoint trained through ``nn.TransformerDecoder``
decodes here unchanged, and a step equals the last position of the full causal forward pass (a
test holds them to 1e-5). Decoding runs in eval mode, where the layers' dropouts are identity.

The state is a flat dict of batch-first tensors, as every decoding strategy expects:
``k<l>`` / ``v<l>`` [B, heads, t, d_head], the self-attention keys/values of the t tokens decoded
so far in layer l, and ``mk<l>`` / ``mv<l>`` [B, heads, L, d_head], the memory's cross-attention
keys/values, computed once per image; beam search reorders them all with ``select_state``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

State = dict[str, torch.Tensor]


def cross_attention_cache(layers: nn.ModuleList, memory: torch.Tensor) -> State:
    """memory [B, L, d] -> the initial state: each layer's memory keys/values, empty self-attention caches."""
    state: State = {}
    for i, layer in enumerate(layers):
        attn = layer.multihead_attn
        _, w_k, w_v = attn.in_proj_weight.chunk(3)
        _, b_k, b_v = attn.in_proj_bias.chunk(3)
        state[f"mk{i}"] = _heads(F.linear(memory, w_k, b_k), attn.num_heads)  # [B, h, L, dh]
        state[f"mv{i}"] = _heads(F.linear(memory, w_v, b_v), attn.num_heads)
        empty = memory.new_zeros(memory.size(0), attn.num_heads, 0, attn.head_dim)  # [B, h, 0, dh]
        state[f"k{i}"], state[f"v{i}"] = empty, empty
    return state


def decode_one_token(layers: nn.ModuleList, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
    """x [B, 1, d] (the new token's embedding plus position) -> (its output [B, 1, d], the state with
    its keys and values appended)."""
    new = dict(state)
    for i, layer in enumerate(layers):
        sa = layer.self_attn
        q, k, v = F.linear(layer.norm1(x), sa.in_proj_weight, sa.in_proj_bias).chunk(3, -1)  # [B, 1, d] each
        new[f"k{i}"] = torch.cat([state[f"k{i}"], _heads(k, sa.num_heads)], 2)  # [B, h, t+1, dh]
        new[f"v{i}"] = torch.cat([state[f"v{i}"], _heads(v, sa.num_heads)], 2)
        x = x + sa.out_proj(_merge(F.scaled_dot_product_attention(_heads(q, sa.num_heads), new[f"k{i}"], new[f"v{i}"])))
        ca = layer.multihead_attn
        w_q, b_q = ca.in_proj_weight.chunk(3)[0], ca.in_proj_bias.chunk(3)[0]
        q = _heads(F.linear(layer.norm2(x), w_q, b_q), ca.num_heads)  # [B, h, 1, dh]
        x = x + ca.out_proj(_merge(F.scaled_dot_product_attention(q, state[f"mk{i}"], state[f"mv{i}"])))
        x = x + layer.linear2(layer.activation(layer.linear1(layer.norm3(x))))
    return x, new


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:  # [B, T, d] -> [B, h, T, d / h]
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:  # [B, h, T, dh] -> [B, T, h * dh]
    return x.transpose(1, 2).flatten(2)
