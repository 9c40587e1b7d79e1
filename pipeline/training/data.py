"""Caption batches from the feature cache.

Each epoch draws ``captions_per_image`` captions per training image (all of them with 0) in an
order fixed by (seed, epoch), so a resumed run sees exactly the batches the uninterrupted run
would have seen. Features stay float16 until the batch is assembled.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.cache.reader import FeatureCache
from pipeline.data.manifest import ImageRecord
from pipeline.data.vocab import PAD_ID, Vocabulary


class CaptionPairs(Dataset):
    """Items are (features [L, D] float16, token ids [T]) for one (image, caption) pair."""

    def __init__(self, cache: FeatureCache, records: list[ImageRecord], vocab: Vocabulary, max_words: int):
        self.cache = cache
        self.rows = cache.rows([r.image_id for r in records])  # [N] cache rows
        self.captions = [[vocab.encode(c, max_words) for c in r.captions] for r in records]
        self.items: list[tuple[int, int]] = [(i, j) for i, caps in enumerate(self.captions) for j in range(len(caps))]

    def set_epoch(self, epoch: int, seed: int, captions_per_image: int) -> None:
        rng = np.random.default_rng([seed, epoch])
        items = []
        for i, caps in enumerate(self.captions):
            chosen = range(len(caps)) if captions_per_image <= 0 or captions_per_image >= len(caps) else \
                rng.choice(len(caps), captions_per_image, replace=False)
            items += [(i, int(j)) for j in chosen]
        order = rng.permutation(len(items))
        self.items = [items[k] for k in order]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> tuple[np.ndarray, list[int]]:
        i, j = self.items[k]
        return self.cache[int(self.rows[i])], self.captions[i][j]


def collate(batch: list[tuple[np.ndarray, list[int]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """-> features [B, L, D] float32, tokens [B, T] padded with PAD_ID."""
    feats = torch.from_numpy(np.stack([f for f, _ in batch])).float()
    longest = max(len(t) for _, t in batch)
    tokens = torch.full((len(batch), longest), PAD_ID, dtype=torch.long)
    for b, (_, t) in enumerate(batch):
        tokens[b, : len(t)] = torch.tensor(t)
    return feats, tokens
