"""Multinomial sampling of several captions per image, batched across images.

Self-critical training draws N captions per image from the decoder's own distribution. Like
greedy and beam search it runs through ``init_state`` / ``step`` (every decoder supports it) and
forbids the tokens of ``banned.py``; the per-image work (grid encoder, attention keys, Transformer
memory) is done once per image and the state repeated to its N samples, as beam search repeats
it to beams. Sampling draws from torch's global generator, so a seeded (or resumed) run draws the
same captions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.data.vocab import END_ID, PAD_ID, START_ID
from pipeline.decoders.base import CaptionDecoder, select_state
from pipeline.decoding.banned import mask_banned


@dataclass
class Samples:
    tokens: torch.Tensor  # [K*N, T] sampled ids, <end> included when drawn, PAD_ID after it
    ended: torch.Tensor  # [K*N] bool: the sample drew <end> (False: cut at max_len)
    per_image: int  # N: rows k*N .. k*N + N - 1 are image k's

    def captions(self) -> list[list[int]]:
        """Each sample's words, without <end> and padding."""
        out = []
        for row in self.tokens.tolist():
            out.append(row[: row.index(END_ID)] if END_ID in row else [t for t in row if t != PAD_ID])
        return out

    def teacher_forcing_tokens(self) -> torch.Tensor:
        """[K*N, T+1] <start> + the sample: the decoder's training input and targets in one tensor."""
        start = self.tokens.new_full((self.tokens.size(0), 1), START_ID)
        return torch.cat([start, self.tokens], 1)


@torch.no_grad()
def sample_captions(decoder: CaptionDecoder, features: torch.Tensor, per_image: int, max_len: int,
                    temperature: float = 1.0, min_len: int = 1, allow_unk: bool = False) -> Samples:
    """features [K, L, D] -> ``per_image`` samples for each image, softmax(logits / temperature).

    ``max_len`` counts steps, <end> included; <end> is banned before ``min_len`` words, so with the
    default 1 no sample is empty.
    """
    state = decoder.init_state(features)
    rows = torch.arange(features.size(0), device=features.device).repeat_interleave(per_image)  # [K*N]
    state = select_state(state, rows)
    tokens = torch.full((rows.numel(),), START_ID, dtype=torch.long, device=features.device)  # [K*N]
    done = torch.zeros(rows.numel(), dtype=torch.bool, device=features.device)
    steps = []
    for t in range(max_len):
        log_probs, state = decoder.step(state, tokens)  # [K*N, V]
        probs = (mask_banned(log_probs, t, min_len, allow_unk) / temperature).softmax(-1)  # banned: exactly 0
        tokens = torch.multinomial(probs, 1).squeeze(1).masked_fill(done, PAD_ID)  # [K*N]
        steps.append(tokens)
        done |= tokens == END_ID
        if done.all():
            break
    sampled = torch.stack(steps, 1)  # [K*N, T]
    return Samples(sampled, (sampled == END_ID).any(1), per_image)
