"""What makes two caches interchangeable.

The key hashes everything that determines the stored numbers (encoder, weights, preprocessing,
grid, dtype) and which images they are, so a cache is reused exactly when it would hold the same
features, and refused otherwise with a message naming the field that differs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.data.manifest import Manifest


@dataclass(frozen=True)
class CacheSpec:
    encoder: dict[str, Any]  # FrozenEncoder.describe()
    dtype: str  # storage dtype of the features, "float16" or "float32"
    image_set: str  # digest of (image id, file, size in bytes) per row: which images, by content
    image_names: str  # digest of (image id, file) per row: which images, by name only
    n_images: int

    @property
    def key(self) -> str:
        return digest(asdict(self))[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CacheSpec":
        return cls(**d)

    def differences(self, other: "CacheSpec") -> list[str]:
        """Human-readable list of what differs, e.g. ['encoder.weights: random:0 != IMAGENET1K_V2']."""
        return _diff(self.to_dict(), other.to_dict(), "")


def image_digests(manifest: Manifest) -> tuple[str, str]:
    """(image_set, image_names) digests of a manifest's images, in row order.

    File sizes tell apart two image sets that share file names (a regenerated or re-downloaded
    dataset) at the cost of one stat per image; a missing file counts as size -1.
    """
    names = [[r.image_id, r.file] for r in manifest.images]
    sizes = [_size(manifest.image_path(r)) for r in manifest.images]
    return digest([n + [s] for n, s in zip(names, sizes)]), digest(names)


def images_present(manifest: Manifest) -> bool:
    return Path(manifest.image_root).is_dir()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def digest(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj``: equal exactly when the JSON is."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _diff(a: Any, b: Any, where: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{where}.{k}" if where else k)
        return out
    return [] if a == b else [f"{where}: {a} != {b}"]
