"""What makes two caches interchangeable.

The key hashes everything that determines the stored numbers (encoder, weights, preprocessing,
grid, dtype) and which images they are by name, so a cache is reused when it would hold the same
features, and refused otherwise with a message naming the field that differs. What the images
hold is checked row by row (``contents``: size, mtime and a digest recorded per row), so one
replaced image re-extracts its own row, not a new cache; ``image_set`` (names and sizes, which
training compares with its manifest) is recorded in the spec but kept out of the key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from pipeline.cache.contents import file_stats
from pipeline.data.manifest import Manifest


@dataclass(frozen=True)
class CacheSpec:
    encoder: dict[str, Any]  # FrozenEncoder.describe()
    dtype: str  # storage dtype of the features, "float16" or "float32"
    image_set: str  # digest of (image id, file, size in bytes) per row, as last extracted; not in the key
    image_names: str  # digest of (image id, file) per row: which images, by name
    n_images: int

    @property
    def key(self) -> str:
        return digest({k: v for k, v in asdict(self).items() if k != "image_set"})[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CacheSpec":
        return cls(**d)

    def differences(self, other: "CacheSpec") -> list[str]:
        """Human-readable list of what differs, e.g. ['encoder.weights: random:0 != IMAGENET1K_V2']."""
        return _diff(self.to_dict(), other.to_dict(), "")


def image_digests(manifest: Manifest, sizes: Sequence[int] | None = None) -> tuple[str, str]:
    """(image_set, image_names) digests of a manifest's images, in row order.

    File sizes (``sizes``, else one stat per image; -1 for a missing file; a shard's row has its
    tar's size) tell apart two image sets that share file names (a regenerated or re-downloaded dataset).
    """
    if sizes is None:
        sizes = file_stats(manifest.image_files())[:, 0]
    names = _names(manifest)
    return digest([n + [int(s)] for n, s in zip(names, sizes)]), digest(names)


def names_digest(manifest: Manifest) -> str:
    """The ``image_names`` digest alone, without touching the image files."""
    return digest(_names(manifest))


def _names(manifest: Manifest) -> list[list[str]]:
    return [[r.image_id, r.file] for r in manifest.images]


def images_present(manifest: Manifest) -> bool:
    return Path(manifest.image_root).is_dir()


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
