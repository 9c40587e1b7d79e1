"""Picking the compute device: "auto" means the GPU when there is one."""

from __future__ import annotations

import torch

from pipeline.errors import CapcacheError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CapcacheError(f"device {name!r} asked for but no CUDA GPU is visible; use --device cpu")
    return dev
