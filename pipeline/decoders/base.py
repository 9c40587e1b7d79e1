"""The contract that lets every decoder use every decoding strategy.

Training calls ``forward`` (teacher forcing, all steps at once where the model allows); greedy
and beam search call ``init_state`` once and ``step`` per token. A state is a dict of tensors
with the batch (or beam) dimension first, so search code can reorder it generically.

Training batches are grouped by image: ``forward`` gets one feature row per image and
``image_index`` [B] naming each caption's image, so a decoder does its per-image work (grid
encoder, attention keys, memory) once per image and only then expands it to the captions, with
the same ``select_state`` that beam search uses to reorder beams.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.data.vocab import END_ID, PAD_ID

State = dict[str, torch.Tensor]  # every tensor: [B, ...]


@dataclass
class DecoderOutput:
    logits: torch.Tensor  # [B, T, V]
    attention: torch.Tensor | None = None  # [B, T, L] for attention decoders
    extras: dict = field(default_factory=dict)


class CaptionDecoder(nn.Module):
    vocab_size: int

    def forward(self, features: torch.Tensor, tokens: torch.Tensor, teacher_forcing: float = 1.0,
                image_index: torch.Tensor | None = None) -> DecoderOutput:
        """features [K, L, D], tokens [B, T] (input tokens, starting with <start>), image_index [B]
        (each caption's feature row; None: K == B, one row per caption) -> logits [B, T, V]."""
        raise NotImplementedError

    def init_state(self, features: torch.Tensor) -> State:
        """features [B, L, D] -> decoding state for ``step``."""
        raise NotImplementedError

    def step(self, state: State, tokens: torch.Tensor) -> tuple[torch.Tensor, State]:
        """tokens [B] (last emitted) -> (log-probabilities [B, V], next state)."""
        raise NotImplementedError

    def regularization(self, output: DecoderOutput, mask: torch.Tensor) -> torch.Tensor:
        """Extra training loss (e.g. doubly stochastic attention); mask [B, T] marks real tokens."""
        return output.logits.new_zeros(())


def followed_by_target(tokens: torch.Tensor) -> torch.Tensor:
    """tokens [B, T] (decoder inputs) -> [B, T] bool: a target follows (not <end>, not padding)."""
    return (tokens != PAD_ID) & (tokens != END_ID)


def logits_where(output: Callable[[torch.Tensor], torch.Tensor], hidden: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
    """hidden [B, T, H], mask [B, T] -> logits [B, T, V]: ``output`` of the masked positions, 0 elsewhere.

    The output layer is a decoder's largest product, and in a training batch only about half of
    [B, T] has a target (52 % of grouped Flickr8k batches of 13 images x 5 captions), so it runs
    on the N masked rows only, never on padding, whose logits the loss ignores.
    """
    real = output(hidden[mask])  # [N, V]
    out = real.new_zeros(*mask.shape, real.size(-1))  # [B, T, V]
    out[mask] = real
    return out


def select_state(state: State, index: torch.Tensor) -> State:
    """Pick (and repeat) batch rows of every state tensor: index [B'] -> state with batch B'."""
    return {k: v.index_select(0, index) for k, v in state.items()}


class RecurrentDecoder(CaptionDecoder):
    """Step-by-step teacher forcing, with scheduled sampling when ``teacher_forcing`` < 1.

    With probability 1 - teacher_forcing a position is fed the model's own previous prediction
    instead of the reference word (seed 001 trains with 70 % teacher forcing).

    Captions are sorted longest first and step t runs only the captions still going (Show, Attend
    and Tell's ``decode_lengths``, as in sgrvinod's implementation): captions of a batch differ
    twofold in length, so this skips about half of the recurrent work, and the padded positions,
    whose targets the loss ignores, get zero logits and zero attention.
    """

    def forward(self, features: torch.Tensor, tokens: torch.Tensor, teacher_forcing: float = 1.0,
                image_index: torch.Tensor | None = None) -> DecoderOutput:
        batch, steps = tokens.shape  # [B, T]
        lengths = followed_by_target(tokens).sum(1)  # [B] inputs with a target after them
        lengths, order = lengths.sort(descending=True)
        tokens = tokens.index_select(0, order)
        rows = order if image_index is None else image_index.index_select(0, order)  # [B] feature row per caption
        state = select_state(self.init_state(features), rows)
        active = (lengths.unsqueeze(0) > torch.arange(steps, device=tokens.device).unsqueeze(1)).sum(1).tolist()  # [T]
        sampled = teacher_forcing < 1.0
        hidden, attention, own = [], [], None
        for t, n in enumerate(active):
            if n == 0:
                break
            state = {k: v[:n] for k, v in state.items()}  # the n longest captions are still going
            prev = tokens[:n, t]  # [n]
            if t > 0 and sampled:
                use_own = torch.rand(prev.shape, device=prev.device) >= teacher_forcing
                prev = torch.where(use_own, own[:n], prev)
            step_hidden, state = self.step_hidden(state, prev)  # [n, H]
            if sampled:  # the next step feeds on this step's prediction
                own = self.output(step_hidden).argmax(-1)
            hidden.append(F.pad(step_hidden, (0, 0, 0, batch - n)))  # [B, H]
            if "alpha" in state:
                attention.append(F.pad(state["alpha"], (0, 0, 0, batch - n)))  # [B, L]
        pad = steps - len(hidden)  # trailing steps no caption reaches
        unsort = order.argsort()
        # one output projection for all steps: an [N, H] x [H, V] product instead of T small ones
        # (the largest matmul of the step, so batching it is most of the recurrent speed-up on CPU)
        running = lengths.unsqueeze(1) > torch.arange(len(hidden), device=tokens.device)  # [B, T'] (sorted)
        out = logits_where(self.output, torch.stack(hidden, 1), running)  # [B, T', V]
        out = F.pad(out, (0, 0, 0, pad)).index_select(0, unsort)  # [B, T, V]
        alphas = F.pad(torch.stack(attention, 1), (0, 0, 0, pad)).index_select(0, unsort) if attention else None
        return DecoderOutput(out, alphas)

    def step(self, state: State, tokens: torch.Tensor) -> tuple[torch.Tensor, State]:
        hidden, state = self.step_hidden(state, tokens)
        return self.output(hidden).log_softmax(-1), state

    def output(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [..., H] -> logits [..., V] (dropout, then the output layer ``self.out``)."""
        return self.out(self.dropout(hidden))

    def step_hidden(self, state: State, tokens: torch.Tensor) -> tuple[torch.Tensor, State]:
        """tokens [B] -> (the top hidden state [B, H] the output layer reads, next state)."""
        raise NotImplementedError
