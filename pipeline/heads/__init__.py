"""Tagging heads over cached features (seed 004): one file per head, registered by name."""

from pipeline.heads import label_predictor, label_quantity, tag_mlp, visual_attention, visual_linear  # noqa: F401  (register)
from pipeline.heads.config import HeadsConfig
from pipeline.heads.registry import available_heads, build_head
from pipeline.heads.tagger import COMPONENTS, Tagger, TaggerOutput

__all__ = ["COMPONENTS", "HeadsConfig", "Tagger", "TaggerOutput", "available_heads", "build_head"]
