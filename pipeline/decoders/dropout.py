"""Dropout that costs less than half as much on CPU, swapped in for every ``nn.Dropout``.

PyTorch's CPU dropout draws one float per element (``bernoulli_``, about 100 M elements/s on this
machine's cores): on 2 cores its profile share was 15 % of a ``cpu-transformer`` training step
and 9 % of a ``cpu-lstm-att`` one. Here each 64-bit random word yields four 16-bit uniform
integers, of which 15 bits are used (``random_`` on int64 fills [0, 2^63), so every 16-bit
field's top bit is not uniform), and an element is kept when its integer is at or above
round(p * 2^15): the keep rate is p rounded to 1/32768, the scaling 1 / (1 - p) as in
``nn.Dropout``. On a 130 x 18 x 1024 activation ``F.dropout`` takes 29 ms, this 13 ms. The words
come from torch's default generator, so seeding and checkpoint/resume of the RNG state work as
before. Other devices keep ``F.dropout`` (CUDA's generator is already fast).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_BITS = 15


class FastDropout(nn.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or self.p >= 1.0 or x.device.type != "cpu":
            return F.dropout(x, self.p, self.training, self.inplace)
        return torch.where(kept(x.shape, self.p), x * (1.0 / (1.0 - self.p)), 0.0)


def kept(shape: torch.Size, p: float) -> torch.Tensor:
    """A bool mask of ``shape``, each element False with probability p (rounded to 1/2^15)."""
    n = shape.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_()  # [ceil(n / 4)], 63 random bits each
    fields = words.view(torch.int16)[:n].view(shape) & ((1 << _BITS) - 1)  # uniform on [0, 2^15)
    return fields >= round(p * (1 << _BITS))


def use_fast_dropout(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Dropout`` inside ``model`` (including those of PyTorch's Transformer
    layers) by ``FastDropout`` with the same rate; the attention-weight dropout inside
    ``nn.MultiheadAttention`` is functional and stays as it is."""
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                setattr(parent, name, FastDropout(child.p, child.inplace))
    return model
