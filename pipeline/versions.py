"""Library versions recorded beside every cache and run, for reproducing a result later."""

from __future__ import annotations

import platform
from importlib import metadata


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("capcache", "torch", "torchvision", "open_clip_torch", "h5py", "numpy", "timm"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out
