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


def output_shape(model: FrozenEncoder, dev: torch.device) -> tuple[int, int]:
    """(L, D) of the encoder's output, from one dummy image."""
    size = model.preprocessing.crop
    with torch.inference_mode():
        out = model(torch.zeros(1, 3, size, size, device=dev))  # [1, L, D]
    return int(out.shape[1]), int(out.shape[2])


def encode_images(model: FrozenEncoder, images: torch.Tensor, dev: torch.device,
                  pad_to: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """images [B, 3, S, S] -> (grid tokens [B, L, D], pooled [B, E] or None), as extraction computes them.

    ``pad_to``: run a batch of fewer images as one of that many (the last image repeated, its
    outputs dropped). oneDNN and cuDNN pick their kernels by batch size, and kernels differ in the
    last bits: a part's or a resumed run's short last batch would otherwise give an image other
    features than the full batch it sat in before. With one batch shape every image's features are
    the same whichever images share its batch (they do not depend on their position in it).
    """
    n = len(images)
    if pad_to is not None and n < pad_to:
        images = torch.cat([images, images[-1:].expand(pad_to - n, *images.shape[1:])])  # [pad_to, 3, S, S]
    images = images.to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=dev.type == "cuda"):
        tokens, pooled = model.encode(images)
    return tokens[:n], pooled[:n] if pooled is not None else None
