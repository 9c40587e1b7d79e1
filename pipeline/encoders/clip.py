"""open_clip ViTs: patch tokens as the grid, the projected image embedding as ``pooled``.

Names and weights: each registered name fixes an open_clip architecture (CLIP_MODELS:
``clip-vit-b-32`` is open_clip's ``ViT-B-32``); ``--weights`` is any open_clip pretrained tag of that
architecture (``openai``, the default, or e.g. ``laion2b_s34b_b79k``), ``random[:SEED]`` or a local
checkpoint. Another open_clip ViT is one more line in CLIP_MODELS.

Tokens: the patch tokens after ``ln_post`` and before the projection, as open_clip's
``output_tokens`` gives them (ViT-B/32 at 224 px: 7 x 7 = 49 tokens of 768). The CLS token is left
out: the pooled embedding already carries it (pooled = ln_post(CLS) @ proj), and without it L is a
square grid in row-major order like a CNN's, so ``grid`` pooling and attention maps work the same.
``pooled`` is ``encode_image(normalize=False)``: unnormalised, [B, 512] for B/32 (L2-normalise it
for cosine similarity).

Architecture settings follow the tag: OpenAI's weights were trained with QuickGELU, which the plain
``ViT-B-32`` config lacks (open_clip only warns about the mismatch), so the tag's ``quick_gelu`` is
forced. Random and local-file weights take the default tag's settings and preprocessing.
"""

from __future__ import annotations

from functools import partial

import torch

from pipeline.encoders.base import FrozenEncoder, grid_to_tokens
from pipeline.encoders.downloads import open_clip_checkpoint
from pipeline.encoders.preprocessing import Preprocessing
from pipeline.encoders.registry import register
from pipeline.encoders.weights import WeightsSpec, load_state_file, load_strict, seeded
from pipeline.errors import CapcacheError

CLIP_MODELS = {"clip-vit-b-32": "ViT-B-32", "clip-vit-b-16": "ViT-B-16", "clip-vit-l-14": "ViT-L-14"}
DEFAULT_TAG = "openai"


class ClipViT(FrozenEncoder):
    def __init__(self, name: str, arch: str, weights: WeightsSpec, grid: int | None):
        import open_clip  # imported on use: it takes a second and only CLIP encoders need it

        tag = weights.value if weights.kind == "named" else DEFAULT_TAG
        cfg = open_clip.get_pretrained_cfg(arch, tag)
        if not cfg:
            raise CapcacheError(f"unknown open_clip weights {tag!r} for {name} ({arch}); valid: "
                                f"{', '.join(open_clip.list_pretrained_tags_by_model(arch))}, random[:SEED] or a local file")
        checkpoint = state = None  # found or read before the network is built, so a missing file fails at once
        if weights.kind == "named":
            checkpoint = open_clip_checkpoint(arch, tag, cfg, file_fits=tag == DEFAULT_TAG)
        elif weights.kind == "file":
            state = visual_state(load_state_file(weights.value))
        with seeded(int(weights.value) if weights.kind == "random" else 0):
            model = open_clip.create_model(
                arch, pretrained=checkpoint, force_quick_gelu=cfg.get("quick_gelu", False),
                force_preprocess_cfg={k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg})
        visual = model.visual  # the text tower is dropped with ``model``
        if state is not None:
            load_strict(visual, state, weights.value)
        super().__init__(name, weights, clip_preprocessing(open_clip.get_model_preprocess_cfg(model)),
                         feature_dim=visual.transformer.width, grid=grid, options={"tokens": "patches after ln_post"})
        self.pooled_dim = visual.output_dim  # E
        visual.output_tokens = True  # forward returns (pooled [B, E], patch tokens [B, h*w, D])
        self.model = visual

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, 3, S, S] -> (tokens [B, h*w or grid^2, D], pooled [B, E]); S is fixed by the positional embedding."""
        pooled, tokens = self.model(images)  # [B, E], [B, h*w, D]
        h, w = self.model.grid_size
        fmap = tokens.transpose(1, 2).reshape(len(tokens), -1, h, w)  # [B, D, h, w], row-major as the patches
        return grid_to_tokens(fmap, self.grid), pooled

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B, 3, S, S] -> [B, L, D]
        return self.encode(images)[0]


def visual_state(state: dict) -> dict:
    """The image tower's tensors of a full open_clip checkpoint (its ``visual.*`` keys); the text tower is not used."""
    return {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}


def clip_preprocessing(cfg: dict) -> Preprocessing:
    """open_clip's preprocess config (resize the shorter side, centre crop) as a recorded Preprocessing."""
    sides = {cfg["size"]} if isinstance(cfg["size"], int) else set(cfg["size"])
    if cfg.get("resize_mode", "shortest") != "shortest" or len(sides) > 1:
        raise CapcacheError(f"open_clip preprocessing {cfg} is not shorter-side resize + square centre crop")
    (side,) = sides
    return Preprocessing(resize=side, crop=side, interpolation=cfg["interpolation"],
                         mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))


for _name, _arch in CLIP_MODELS.items():
    register(_name, default_weights=DEFAULT_TAG)(partial(ClipViT, _name, _arch))
