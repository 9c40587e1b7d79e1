"""Caption batches from the feature cache, grouped by image.

Each epoch draws ``captions_per_image`` captions per training image (all of them with 0) in an
order fixed by (seed, epoch), so a resumed run sees exactly the batches the uninterrupted run
would have seen. An item is one image with the captions drawn for it: its features are read once
and the decoder computes everything per image (grid projection and encoder, attention keys,
Transformer memory) once before expanding it to the captions with ``Batch.image_index``
(ruotianluo's ``seq_per_img``, done inside the model rather than by copying features). With
``grouped=False`` every (image, caption) pair is an item of its own, shuffled independently: the
classic flat loader, kept for comparison (benchmarks/train.py) and for losses that want it.
With augmented views (``extract --views K``, ``data.views``) each image's features come, for a
whole epoch, from one of the clean cache and its K views, drawn with (seed, epoch) too.
Features stay float16 until the batch is assembled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.cache.reader import FeatureCache
from pipeline.data.manifest import ImageRecord
from pipeline.data.vocab import PAD_ID, CaptionVocabulary


@dataclass
class Batch:
    features: torch.Tensor  # [K, L, D] float32, one row per image
    tokens: torch.Tensor  # [B, T] <start> w1 .. wn <end> <pad>..., one row per caption
    image_index: torch.Tensor  # [B] row of `features` each caption belongs to
    images: torch.Tensor  # [K] each feature row's image: its index in the dataset's records (SCST's references)

    def to(self, device: torch.device) -> "Batch":
        return Batch(*(t.to(device, non_blocking=True) for t in self._tensors()))

    def pin_memory(self) -> "Batch":  # DataLoader(pin_memory=True) calls this on custom batch types
        return Batch(*(t.pin_memory() for t in self._tensors()))

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return self.features, self.tokens, self.image_index, self.images


class CaptionGroups(Dataset):
    """Items are (features [L, D] float16, token id lists, record index) for one image and its drawn captions."""

    def __init__(self, cache: FeatureCache, records: list[ImageRecord], vocab: CaptionVocabulary, max_words: int,
                 views: list[FeatureCache] = ()):
        ids = [r.image_id for r in records]
        self.sources = [cache, *views]  # the clean features, then views 1..K
        self.rows = np.stack([c.rows(ids) for c in self.sources])  # [1 + K, N] rows of each image in each source
        self.source_of = np.zeros(len(records), dtype=np.int64)  # [N] the source each image is read from this epoch
        self.captions = [[vocab.encode(c, max_words) for c in r.captions] for r in records]
        self.items: list[tuple[int, list[int]]] = [(i, list(range(len(caps)))) for i, caps in enumerate(self.captions)]

    def set_epoch(self, epoch: int, seed: int, captions_per_image: int, grouped: bool = True) -> None:
        rng = np.random.default_rng([seed, epoch])
        groups = []
        for i, caps in enumerate(self.captions):
            chosen = range(len(caps)) if captions_per_image <= 0 or captions_per_image >= len(caps) else \
                rng.choice(len(caps), captions_per_image, replace=False)
            groups.append((i, [int(j) for j in chosen]))
        items = groups if grouped else [(i, [j]) for i, js in groups for j in js]
        order = rng.permutation(len(items))
        self.items = [items[k] for k in order]
        if len(self.sources) > 1:  # a stream of its own: runs without views keep the batches they always had
            self.source_of = np.random.default_rng([seed, epoch, 1]).integers(0, len(self.sources), len(self.captions))

    def captions_per_item(self) -> float:
        """Mean captions an item carries this epoch (1 when flat), to size batches in captions."""
        return sum(len(js) for _, js in self.items) / max(len(self.items), 1)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> tuple[np.ndarray, list[list[int]], int]:
        i, js = self.items[k]
        source = int(self.source_of[i])
        return self.sources[source][int(self.rows[source, i])], [self.captions[i][j] for j in js], i


def items_per_batch(batch_size: int, captions_per_item: float) -> int:
    """``batch_size`` counts captions whatever the grouping, so learning rates mean the same thing
    grouped or flat: 64 captions at 5 per image is a batch of 13 images."""
    return max(1, round(batch_size / max(captions_per_item, 1.0)))


def collate(items: list[tuple[np.ndarray, list[list[int]], int]]) -> Batch:
    """-> Batch: features [K, L, D] float32, tokens [B, T] padded with PAD_ID, image_index [B], images [K]."""
    feats = torch.from_numpy(np.stack([f for f, _, _ in items])).float()
    captions = [t for _, caps, _ in items for t in caps]
    image_index = torch.tensor([k for k, (_, caps, _) in enumerate(items) for _ in caps], dtype=torch.long)
    tokens = torch.full((len(captions), max(len(t) for t in captions)), PAD_ID, dtype=torch.long)
    for b, t in enumerate(captions):
        tokens[b, : len(t)] = torch.tensor(t)
    return Batch(feats, tokens, image_index, torch.tensor([i for _, _, i in items], dtype=torch.long))
