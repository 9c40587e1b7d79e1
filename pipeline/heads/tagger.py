"""The composite tagger of seed 004 (its Fig. 3.1), over cached features:

    features [B, L, D] -> visual head -> vf logits [B, C]
    tags [B, T]        -> tag MLP     -> tf logits [B, C]        (optional)
    v = [sigmoid(vf), sigmoid(tf)]    -> LP  -> label logits [B, C]   (optional)
                                      -> LQP -> normalised count [B]  (optional)

v is detached: each component keeps its own objective (the seed trains them in stages, each on
its own loss), so training them at once is the seed's stages run side by side, not a different
model. The model's label logits are LP's when it has one, the visual head's otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pipeline.heads.config import HeadsConfig
from pipeline.heads.registry import build_head

COMPONENTS = ("visual", "tags", "combine", "quantity")  # the config field naming each one's head


@dataclass
class TaggerOutput:
    visual: torch.Tensor  # [B, C] logits of the visual head (vf)
    tags: torch.Tensor | None  # [B, C] logits of the tag MLP (tf)
    combined: torch.Tensor | None  # [B, C] LP's logits
    quantity: torch.Tensor | None  # [B] LQP's normalised label count

    @property
    def logits(self) -> torch.Tensor:  # [B, C] the model's label logits
        return self.combined if self.combined is not None else self.visual


class Tagger(nn.Module):
    def __init__(self, config: HeadsConfig, feature_dim: int, n_classes: int, n_tags: int = 0,
                 count_mean: float = 0.0, count_std: float = 1.0):
        super().__init__()
        self.n_classes = n_classes
        self.visual = build_head(config.visual, config, feature_dim, n_classes)
        self.tags = build_head(config.tags, config, n_tags, n_classes) if config.tags else None
        v_dim = n_classes * (2 if self.tags is not None else 1)
        self.combine = build_head(config.combine, config, v_dim, n_classes) if config.combine else None
        self.quantity = build_head(config.quantity, config, v_dim, 1) if config.quantity else None
        # the train set's label-count mean and spread: LQP's target normalisation, saved with the weights
        self.register_buffer("count_stats", torch.tensor([count_mean, max(count_std, 1e-6)]))

    def components(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in COMPONENTS if getattr(self, name) is not None}

    def forward(self, features: torch.Tensor, tags: torch.Tensor | None = None) -> TaggerOutput:
        vf = self.visual(features)  # [B, C]
        tf = self.tags(tags) if self.tags is not None else None  # [B, C]
        v = torch.cat([vf.sigmoid(), *([tf.sigmoid()] if tf is not None else [])], dim=1).detach()  # [B, C or 2C]
        combined = self.combine(v) if self.combine is not None else None
        quantity = self.quantity(v) if self.quantity is not None else None
        return TaggerOutput(vf, tf, combined, quantity)

    def normalised_counts(self, counts: torch.Tensor) -> torch.Tensor:  # [B] label counts -> LQP's target [B]
        mean, std = self.count_stats
        return (counts - mean) / std

    def predicted_counts(self, out: TaggerOutput) -> torch.Tensor:  # -> [B] long, k for top-k, in [1, C]
        if out.quantity is None:
            raise ValueError("this tagger has no label-quantity head (LQP)")
        mean, std = self.count_stats
        return (out.quantity * std + mean).round().clamp(1, self.n_classes).long()
