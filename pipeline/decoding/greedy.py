"""Greedy decoding for a whole batch of images at once."""

from __future__ import annotations

import torch

from pipeline.data.vocab import END_ID, PAD_ID, START_ID
from pipeline.decoders.base import CaptionDecoder


@torch.inference_mode()
def greedy_search(decoder: CaptionDecoder, features: torch.Tensor, max_len: int = 20) -> tuple[list[list[int]], torch.Tensor]:
    """features [B, L, D] -> (token ids per image without <start>/<end>, sum of log-probs [B])."""
    batch = features.size(0)
    state = decoder.init_state(features)
    tokens = torch.full((batch,), START_ID, dtype=torch.long, device=features.device)  # [B]
    done = torch.zeros(batch, dtype=torch.bool, device=features.device)
    score = torch.zeros(batch, device=features.device)
    steps = []
    for _ in range(max_len):
        log_probs, state = decoder.step(state, tokens)  # [B, V]
        best, tokens = log_probs.max(-1)  # [B], [B]
        score += torch.where(done, torch.zeros_like(best), best)
        tokens = tokens.masked_fill(done, PAD_ID)
        steps.append(tokens)
        done |= tokens == END_ID
        if done.all():
            break
    seqs = torch.stack(steps, 1).tolist()  # [B, T]
    return [[t for t in _until_end(s)] for s in seqs], score


def _until_end(seq: list[int]) -> list[int]:
    return seq[: seq.index(END_ID)] if END_ID in seq else [t for t in seq if t != PAD_ID]
