"""What an extraction produced, and where a cache of given settings lives; no torch needed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.cache.key import CacheSpec, image_digests
from pipeline.cache.parts import stored_bytes
from pipeline.cache.sidecar import sidecar_path
from pipeline.data.image_source import stored_name
from pipeline.data.manifest import Manifest

if TYPE_CHECKING:  # torch is imported only when there is work to do
    from pipeline.encoders.base import FrozenEncoder


@dataclass
class ExtractResult:
    path: Path
    key: str
    n_images: int
    extracted: int  # rows written by this run
    bad: list[dict] = field(default_factory=list)  # {"image_id", "file", "error"}
    seconds: float = 0.0
    reused: bool = False
    main_process: bool = True  # False on the other ranks of a torchrun job (they print nothing)
    changed: list[str] = field(default_factory=list)  # image ids whose file changed since their row was written
    notes: list[str] = field(default_factory=list)  # anything else the user should know (other caches, leftovers)
    views: list["ExtractResult"] = field(default_factory=list)  # the caches of the augmented views 1..K (--views K)

    @property
    def size_bytes(self) -> int:
        return stored_bytes(self.path)

    @property
    def images_per_s(self) -> float:
        return self.extracted / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """What happened to the cache, then one line per augmented view's cache."""
        return "\n".join([self._own_summary(), *(f"view {k}: {v._brief()}" for k, v in enumerate(self.views, 1))])

    def _brief(self) -> str:
        if self.reused:
            return f"complete, nothing to do ({self.path.name})"
        return (f"extracted now {self.extracted}, skipped as bad {len(self.bad)}, {self.size_bytes / 2**20:.1f} MiB, "
                f"{self.images_per_s:.1f} images/s ({self.path.name})")

    def _own_summary(self) -> str:
        if self.reused:
            return "\n".join([*self.notes, f"cache is complete and matches these settings (key {self.key}); nothing to do"])
        lines = [*self.notes]
        if self.changed:
            lines.append(f"{len(self.changed)} images changed since they were extracted, their rows were redone: "
                         + ", ".join(self.changed[:5]) + (" ..." if len(self.changed) > 5 else ""))
        lines += [f"images: {self.n_images}, extracted now: {self.extracted}, skipped as bad: {len(self.bad)}",
                  f"size on disk: {self.size_bytes / 2**20:.1f} MiB, speed: {self.images_per_s:.1f} images/s"]
        lines += [f"  bad: {b['file']}: {b['error']}" for b in self.bad[:10]]
        if len(self.bad) > 10:
            lines.append(f"  ... and {len(self.bad) - 10} more, listed in {sidecar_path(self.path)}")
        return "\n".join(lines)


def cache_path_for(cache_dir: str | Path, manifest: Manifest, spec: CacheSpec) -> Path:
    """``<encoder>-<manifest>-<key>.h5``; an augmented view's cache says which it is: ``...-view2-<key>.h5``."""
    view = spec.encoder.get("view")
    return Path(cache_dir) / (f"{spec.encoder['encoder']}-{manifest.name}-" + (f"view{view['index']}-" if view else "")
                              + f"{spec.key}.h5")


def cache_spec(manifest: Manifest, encoder: FrozenEncoder, dtype: str, stats: np.ndarray | None = None) -> CacheSpec:
    """The spec of ``encoder``'s cache over the manifest's images; ``stats`` [N, 2] their files' (size, mtime_ns)."""
    return described_cache_spec(manifest, encoder.describe(), dtype, stats)


def described_cache_spec(manifest: Manifest, description: dict, dtype: str,
                         stats: np.ndarray | None = None) -> CacheSpec:
    """``cache_spec`` from the encoder's recorded ``describe()`` (a plan, without building it)."""
    image_set, image_names = image_digests(manifest, None if stats is None else stats[:, 0])
    return CacheSpec(encoder=description, dtype=dtype, image_set=image_set, image_names=image_names,
                     n_images=len(manifest.images))


def sidecar_report(spec: CacheSpec, manifest: Manifest, bad: list[dict], complete: bool, n_done: int | None,
                   world: int, request: str) -> dict:
    """The report (``pipeline.cache.sidecar``) written beside a cache."""
    return {"key": spec.key, "spec": spec.to_dict(), "manifest": manifest.name, "complete": complete,
            "n_images": spec.n_images, "n_done": spec.n_images - len(bad) if n_done is None else n_done,
            "bad": bad, "processes": world, "requests": [request]}


def bad_images(manifest: Manifest, errors: dict[int, str]) -> list[dict]:
    """{row: error} -> the report's list of bad images, in row order; an image inside a tar is named
    through it (``00000.tar/000000001.jpg``), as the cache records it."""
    return [{"image_id": manifest.images[r].image_id, "file": stored_name(manifest.images[r]), "error": e}
            for r, e in sorted(errors.items())]
