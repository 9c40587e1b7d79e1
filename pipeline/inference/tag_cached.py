"""A tagger's outputs over a set of cached images, and the seed's indicator functions applied to them.

Shared by validation (each epoch) and ``capcache eval``: probabilities come from the model's
label logits (LP's once it is trained, the visual head's before), k from LQP once it is trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from pipeline.evaluation.tagging.indicators import best_threshold, threshold, top_k
from pipeline.evaluation.tagging.metrics import TaggingScores, tagging_scores
from pipeline.heads.tagger import Tagger
from pipeline.inference.labelled_images import LabelledImages, collate_tags


@dataclass
class Predictions:
    probs: np.ndarray  # [N, C] label probabilities
    counts: np.ndarray | None  # [N] LQP's k per image (None without a trained LQP)
    truth: np.ndarray  # [N, C] 0/1

    def indicator_rows(self, top: int, alpha: float | None) -> dict[str, tuple[np.ndarray, float | None]]:
        """Row name -> (predicted 0/1 labels [N, C], threshold), for every indicator this model supports."""
        rows = {f"top-{top}": (top_k(self.probs, top), None)}
        if alpha is not None:
            rows[f"threshold {alpha:.2f}"] = (threshold(self.probs, alpha), alpha)
        if self.counts is not None:
            rows["top-k (LQP)"] = (top_k(self.probs, self.counts), None)
        return rows


@torch.inference_mode()
def predict(tagger: Tagger, images: LabelledImages, device: torch.device, batch_size: int = 256,
            use_combined: bool = True, use_quantity: bool = True, workers: int = 0) -> Predictions:
    tagger.eval()
    images.in_order()
    probs, counts = [], []
    for batch in DataLoader(images, batch_size=batch_size, collate_fn=collate_tags, num_workers=workers):
        batch = batch.to(device)
        out = tagger(batch.features, batch.tags if tagger.tags is not None else None)
        logits = out.combined if use_combined and out.combined is not None else out.visual  # [B, C]
        probs.append(logits.sigmoid().cpu().numpy())
        if use_quantity and out.quantity is not None:
            counts.append(tagger.predicted_counts(out).cpu().numpy())
    return Predictions(np.concatenate(probs), np.concatenate(counts) if counts else None, images.labels)


def headline_scores(pred: Predictions, indicator: str, top: int) -> TaggingScores:
    """The scores of the run's own indicator (threshold: at the alpha best on these images)."""
    if indicator == "topk" and pred.counts is not None:
        return tagging_scores(top_k(pred.probs, pred.counts), pred.truth)
    if indicator == "threshold":
        return best_threshold(pred.probs, pred.truth)[1]
    return tagging_scores(top_k(pred.probs, top), pred.truth)
