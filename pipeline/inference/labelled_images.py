"""Tagging batches from the feature cache: one item per image, its features, tags and labels.

Images none of the classes describes are left out (seed 004, Table 4.1: every image has at least
one label): a zero-label image has no top-k answer and would teach LQP a count no image is
evaluated on. The order of each epoch is fixed by (seed, stage, epoch), so a resumed run sees the
batches the uninterrupted one would have.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.cache.reader import FeatureCache
from pipeline.data.labels import LabelSet
from pipeline.data.manifest import ImageRecord


@dataclass
class TagBatch:
    features: torch.Tensor  # [B, L, D] float32
    tags: torch.Tensor  # [B, T] 0/1 (T = 0 without a tag modality)
    labels: torch.Tensor  # [B, C] 0/1
    images: torch.Tensor  # [B] index into the dataset's records

    def to(self, device: torch.device) -> "TagBatch":
        return TagBatch(*(t.to(device, non_blocking=True) for t in (self.features, self.tags, self.labels, self.images)))


def labelled(records: list[ImageRecord], labels: LabelSet) -> tuple[list[ImageRecord], int]:
    """(records with at least one label, how many were left out)."""
    kept = [r for r in records if r.image_id in labels.images and labels.images[r.image_id].labels]
    return kept, len(records) - len(kept)


class LabelledImages(Dataset):
    def __init__(self, cache: FeatureCache, records: list[ImageRecord], labels: LabelSet):
        ids = [r.image_id for r in records]
        self.cache, self.image_ids = cache, ids
        self.rows = cache.rows(ids)  # [N] cache rows
        self.labels = labels.label_matrix(ids)  # [N, C]
        self.tags = labels.tag_matrix(ids)  # [N, T]
        self.order = np.arange(len(ids))

    def set_epoch(self, seed: int, stage: int, epoch: int) -> None:
        self.order = np.random.default_rng([seed, stage, epoch]).permutation(len(self.image_ids))

    def in_order(self) -> None:  # evaluation: the records' own order
        self.order = np.arange(len(self.image_ids))

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        i = int(self.order[k])
        return self.cache[int(self.rows[i])], self.tags[i], self.labels[i], i


def collate_tags(items: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]) -> TagBatch:
    feats = torch.from_numpy(np.stack([f for f, _, _, _ in items])).float()  # [B, L, D]
    tags = torch.from_numpy(np.stack([t for _, t, _, _ in items]))  # [B, T]
    labels = torch.from_numpy(np.stack([y for _, _, y, _ in items]))  # [B, C]
    return TagBatch(feats, tags, labels, torch.tensor([i for *_, i in items], dtype=torch.long))
