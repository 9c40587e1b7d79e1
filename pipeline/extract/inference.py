"""How a frozen encoder is run on a batch, shared by extraction and by captioning new images.

Captioning a photo must give the features its cache row would hold, bit for bit after rounding to
the cache dtype: the same memory format (channels_last changes the convolution kernels and so the
last bits of the result) and, on CUDA, the same fp16 autocast.
"""

from __future__ import annotations

import torch

from pipeline.encoders.base import FrozenEncoder


def prepare_encoder(model: FrozenEncoder, dev: torch.device) -> FrozenEncoder:
    return model.to(dev).to(memory_format=torch.channels_last)


def encode_images(model: FrozenEncoder, images: torch.Tensor, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """images [B, 3, S, S] -> (grid tokens [B, L, D], pooled [B, E] or None), as extraction computes them."""
    images = images.to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=dev.type == "cuda"):
        return model.encode(images)
