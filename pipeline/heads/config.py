"""One typed config for the tagging heads (seed 004): which head fills each role, and their sizes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class HeadsConfig:
    visual: str = "visual_linear"  # VCNN's classifier over frozen features: "visual_linear" | "visual_attention"
    tags: str = ""  # "" (no tag modality) | "tag_mlp": the noisy-tag MLP
    combine: str = ""  # "" | "label_predictor": LP, one linear layer over v = [vf, tf]
    quantity: str = ""  # "" | "label_quantity": LQP, how many labels an image has (regression)
    visual_dropout: float = 0.2  # on the pooled feature, before the classifier
    attention_queries: int = 4  # visual_attention: learned queries pooling the grid, concatenated
    attention_dim: int = 256  # visual_attention: size of the attention scores' hidden layer
    tag_hidden: int = 512  # tag MLP hidden units
    tag_dropout: float = 0.5
    quantity_hidden: int = 256  # LQP hidden units
    quantity_dropout: float = 0.5  # seed 004: "regression models overfit quickly", dropout 0.5
