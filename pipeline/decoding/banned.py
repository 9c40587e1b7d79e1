"""The tokens no decoding strategy may emit, in one place, so greedy, beam (and any later sampler)
forbid exactly the same ones and beam size 1 stays greedy.

* <pad> and <start> are never targets in training, so emitting one is always an error (and it
  would put attention-map labels out of step with the heatmaps);
* <unk> is a word the model may well have learnt to predict, but a caption that says "<unk>" says
  nothing to a user: banned unless ``allow_unk``;
* <end> is banned at steps t < ``min_len``, so captions have at least ``min_len`` words.

Masking sets the banned log-probs to -inf and leaves every other one exactly as it was (no
renormalisation), so a caption's log-prob is the model's own sum over the tokens it emitted.
"""

from __future__ import annotations

import math

import torch

from pipeline.data.vocab import END_ID, PAD_ID, START_ID, UNK_ID


def banned_tokens(step: int, min_len: int = 0, allow_unk: bool = False) -> tuple[int, ...]:
    """The token ids forbidden at decoding step ``step`` (0-based)."""
    return (PAD_ID, START_ID, *(() if allow_unk else (UNK_ID,)), *((END_ID,) if step < min_len else ()))


def mask_banned(log_probs: torch.Tensor, step: int, min_len: int = 0, allow_unk: bool = False) -> torch.Tensor:
    """log_probs [B, V] (any float dtype) -> float32 copy [B, V] with this step's banned tokens at -inf."""
    banned = torch.tensor(banned_tokens(step, min_len, allow_unk), device=log_probs.device)
    return log_probs.float().index_fill(-1, banned, -math.inf)


def banned_positions(steps: int, vocab_size: int, min_len: int = 0, allow_unk: bool = False,
                     device: torch.device | None = None) -> torch.Tensor:
    """[steps, V] bool, True where step t forbids the token: the mask a sampler applied, for scoring
    its samples again under the same distribution (self-critical training's log-probabilities)."""
    mask = torch.zeros(steps, vocab_size, dtype=torch.bool, device=device)
    for t in range(steps):
        mask[t, list(banned_tokens(t, min_len, allow_unk))] = True
    return mask
