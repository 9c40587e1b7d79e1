"""What makes two caches interchangeable.

The key hashes everything that determines the stored numbers (encoder, weights, preprocessing,
grid, dtype) and which images they are, so a cache is reused exactly when it would hold the same
features, and refused otherwise with a message naming the field that differs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Iterable


@dataclass(frozen=True)
class CacheSpec:
    encoder: dict[str, Any]  # FrozenEncoder.describe()
    dtype: str  # storage dtype of the features, "float16" or "float32"
    image_set: str  # digest of the (image id, file) list, see image_set_digest
    n_images: int

    @property
    def key(self) -> str:
        return _digest(asdict(self))[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CacheSpec":
        return cls(**d)

    def differences(self, other: "CacheSpec") -> list[str]:
        """Human-readable list of what differs, e.g. ['encoder.weights: random:0 != IMAGENET1K_V2']."""
        return _diff(self.to_dict(), other.to_dict(), "")


def image_set_digest(items: Iterable[tuple[str, str]]) -> str:
    """Digest of (image id, relative file) pairs in order: the rows of the cache."""
    return _digest([list(pair) for pair in items])


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _diff(a: Any, b: Any, where: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{where}.{k}" if where else k)
        return out
    return [] if a == b else [f"{where}: {a} != {b}"]
