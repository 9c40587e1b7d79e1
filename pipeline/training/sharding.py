"""Splitting each global batch between torchrun processes.

``batch_size`` in a config is the global batch: with N processes each takes every N-th item of the
same global batch, so a run on 1 or 4 GPUs sees the same batches in the same order and the same
number of optimiser steps (the hyper-parameters mean the same thing). A final batch with fewer
items than processes is topped up from the start of the epoch, so no rank ever gets an empty one
(DDP would wait forever for its gradients).
"""

from __future__ import annotations

import math
from typing import Iterator

from torch.utils.data import Sampler


class ShardedBatches(Sampler[list[int]]):
    def __init__(self, n_items: int, batch_size: int, rank: int = 0, world: int = 1, skip: int = 0):
        self.n_items, self.batch_size, self.rank, self.world = n_items, batch_size, rank, world
        self.skip = skip  # batches of this epoch already trained (a run resumed mid-epoch)

    def __len__(self) -> int:
        return max(math.ceil(self.n_items / self.batch_size) - self.skip, 0)

    def __iter__(self) -> Iterator[list[int]]:
        for start in range(self.skip * self.batch_size, self.n_items, self.batch_size):
            batch = list(range(start, min(start + self.batch_size, self.n_items)))
            batch += [k % self.n_items for k in range(self.world - len(batch))]  # only when len(batch) < world
            yield batch[self.rank::self.world]
