"""The contract that lets every decoder use every decoding strategy.

Training calls ``forward`` (teacher forcing, all steps at once where the model allows); greedy
and beam search call ``init_state`` once and ``step`` per token. A state is a dict of tensors
with the batch (or beam) dimension first, so search code can reorder it generically.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

State = dict[str, torch.Tensor]  # every tensor: [B, ...]


@dataclass
class DecoderOutput:
    logits: torch.Tensor  # [B, T, V]
    attention: torch.Tensor | None = None  # [B, T, L] for attention decoders
    extras: dict = field(default_factory=dict)


class CaptionDecoder(nn.Module):
    vocab_size: int

    def forward(self, features: torch.Tensor, tokens: torch.Tensor, teacher_forcing: float = 1.0) -> DecoderOutput:
        """features [B, L, D], tokens [B, T] (input tokens, starting with <start>) -> logits [B, T, V]."""
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


def select_state(state: State, index: torch.Tensor) -> State:
    """Pick (and repeat) batch rows of every state tensor: index [B'] -> state with batch B'."""
    return {k: v.index_select(0, index) for k, v in state.items()}


class RecurrentDecoder(CaptionDecoder):
    """Step-by-step teacher forcing, with scheduled sampling when ``teacher_forcing`` < 1.

    With probability 1 - teacher_forcing a position is fed the model's own previous prediction
    instead of the reference word (seed 001 trains with 70 % teacher forcing).
    """

    def forward(self, features: torch.Tensor, tokens: torch.Tensor, teacher_forcing: float = 1.0) -> DecoderOutput:
        state = self.init_state(features)
        steps, attention = [], []
        prev = tokens[:, 0]  # [B]
        for t in range(tokens.size(1)):
            if t > 0:
                prev = tokens[:, t]
                if teacher_forcing < 1.0:
                    own = steps[-1].argmax(-1)  # [B]
                    use_own = torch.rand(prev.shape, device=prev.device) >= teacher_forcing
                    prev = torch.where(use_own, own, prev)
            logits, state = self.step_logits(state, prev)  # [B, V]
            steps.append(logits)
            if "alpha" in state:
                attention.append(state["alpha"])
        return DecoderOutput(torch.stack(steps, 1), torch.stack(attention, 1) if attention else None)

    def step(self, state: State, tokens: torch.Tensor) -> tuple[torch.Tensor, State]:
        logits, state = self.step_logits(state, tokens)
        return logits.log_softmax(-1), state

    def step_logits(self, state: State, tokens: torch.Tensor) -> tuple[torch.Tensor, State]:
        raise NotImplementedError
