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
    default 1 no sample is empty. A sample that draws <end> leaves the batch (its rows of the state
    are dropped), so each step runs only the samples still going: sampled lengths vary widely and
    the longest of a batch's K*N samples sets the number of steps, so running every sample to the
    end would do about twice the recurrent work.
    """
    state = decoder.init_state(features)
    rows = torch.arange(features.size(0), device=features.device).repeat_interleave(per_image)  # [K*N]
    state = select_state(state, rows)
    going = torch.arange(rows.numel(), device=features.device)  # [n] the output row of each sample still going
    tokens = torch.full((rows.numel(),), START_ID, dtype=torch.long, device=features.device)  # [n]
    sampled = torch.full((rows.numel(), max_len), PAD_ID, dtype=torch.long, device=features.device)  # [K*N, T]
    steps = 0
    for t in range(max_len):
        log_probs, state = decoder.step(state, tokens)  # [n, V]
        tokens = draw(mask_banned(log_probs, t, min_len, allow_unk) / temperature)  # [n]
        sampled[going, t] = tokens
        steps = t + 1
        running = tokens != END_ID  # [n]
        if not running.any():
            break
        if not running.all():
            keep = running.nonzero().squeeze(1)  # [n']
            state, tokens, going = select_state(state, keep), tokens[keep], going[keep]
    sampled = sampled[:, :steps]  # [K*N, T]
    return Samples(sampled, (sampled == END_ID).any(1), per_image)


def draw(logits: torch.Tensor) -> torch.Tensor:
    """logits [n, V] (-inf where banned) -> one token per row, drawn from softmax(logits) [n].

    By inverting the cumulative distribution with one uniform number per row: exact like
    ``torch.multinomial``, whose CPU kernel draws V exponential numbers per row (a fifth of a
    sampling step's time at V = 2,541). A banned token (probability exactly 0) adds nothing to
    the sum, so no uniform number can land on it.
    """
    cdf = logits.softmax(-1).double().cumsum(-1)  # [n, V], float64 so the sum has no visible rounding
    total = cdf[:, -1:]  # [n, 1]
    u = torch.rand(total.shape, dtype=cdf.dtype, device=cdf.device) * total  # [n, 1]
    u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))  # < total even where the product rounds up
    return torch.searchsorted(cdf, u, right=True).squeeze(1)  # [n] the first token whose cdf exceeds u
