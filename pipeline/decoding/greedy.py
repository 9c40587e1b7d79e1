"""Greedy decoding for a whole batch of images at once.

Same conventions as ``beam_search`` (max_len counts steps, <end> included; min_len counts words;
the tokens of ``banned.py`` are never emitted), so beam size 1 reproduces greedy exactly.
"""

from __future__ import annotations

import torch

from pipeline.data.vocab import END_ID, PAD_ID, START_ID
from pipeline.decoders.base import CaptionDecoder
from pipeline.decoding.banned import mask_banned


@torch.inference_mode()
def greedy_search(decoder: CaptionDecoder, features: torch.Tensor, max_len: int = 20, min_len: int = 1,
                  allow_unk: bool = False) -> tuple[list[list[int]], torch.Tensor]:
    """features [B, L, D] -> (token ids per image without <start>/<end>, sum of log-probs [B])."""
    batch = features.size(0)
    state = decoder.init_state(features)
    tokens = torch.full((batch,), START_ID, dtype=torch.long, device=features.device)  # [B]
    done = torch.zeros(batch, dtype=torch.bool, device=features.device)
    score = torch.zeros(batch, device=features.device)
    steps = []
    for t in range(max_len):
        log_probs, state = decoder.step(state, tokens)  # [B, V]
        best, tokens = mask_banned(log_probs, t, min_len, allow_unk).max(-1)  # [B], [B]
        score += torch.where(done, torch.zeros_like(best), best)
        tokens = tokens.masked_fill(done, PAD_ID)
        steps.append(tokens)
        done |= tokens == END_ID
        if done.all():
            break
    seqs = torch.stack(steps, 1).tolist()  # [B, T]
    return [_until_end(s) for s in seqs], score


def _until_end(seq: list[int]) -> list[int]:
    """Words before <end>; the <pad> after an image's <end> are fill (banned tokens are never chosen)."""
    return seq[: seq.index(END_ID)] if END_ID in seq else seq
