"""The Manifest: one dataset, every format's importer translates into it.

A manifest names each image once (id, file relative to ``image_root``, split) with its raw
captions. Tokenisation happens later, the same way for every source format, so two importers of
the same data give the same training run.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.data.labels import LabelSet
from pipeline.errors import DataError
from pipeline.io import atomic_write_json, read_json

SPLITS = ("train", "val", "test", "restval")
MANIFEST_VERSION = 1


@dataclass
class ImageRecord:
    image_id: str
    file: str  # relative to Manifest.image_root
    split: str  # one of SPLITS
    captions: list[str]


@dataclass
class Manifest:
    name: str
    image_root: str  # absolute, or relative to the manifest file's folder
    images: list[ImageRecord]
    source: dict = field(default_factory=dict)  # format and input files, for provenance
    version: int = MANIFEST_VERSION
    labels: LabelSet | None = None  # multi-label tagging data (pipeline/data/labels.py), when the set has it

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for rec in self.images:
            if rec.split not in SPLITS:
                raise DataError(f"image {rec.image_id!r} has unknown split {rec.split!r}; use one of {', '.join(SPLITS)}")
            if rec.image_id in seen:
                raise DataError(f"duplicate image id {rec.image_id!r} in manifest {self.name!r}")
            seen.add(rec.image_id)
        if self.labels is not None and (strays := set(self.labels.images) - seen):
            raise DataError(f"the labels section names image {sorted(strays)[0]!r}, which manifest {self.name!r} "
                            "does not have")

    # -- queries ---------------------------------------------------------------------------
    def split(self, name: str) -> list[ImageRecord]:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
        return [r for r in self.images if r.split == name]

    def split_counts(self) -> dict[str, int]:
        counts = Counter(r.split for r in self.images)
        return {s: counts.get(s, 0) for s in SPLITS if counts.get(s, 0)}

    def image_path(self, rec: ImageRecord, base: str | os.PathLike | None = None) -> Path:
        """Absolute path of an image; ``base`` is the manifest's folder for a relative root."""
        root = Path(self.image_root)
        if not root.is_absolute() and base is not None:
            root = Path(base) / root
        return root / rec.file

    # -- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("labels")
        return {**d, **({"labels": self.labels.to_dict()} if self.labels is not None else {})}

    @classmethod
    def from_dict(cls, d: dict, path: object = "<manifest>") -> "Manifest":
        try:
            images = [ImageRecord(**r) for r in d["images"]]
            labels = LabelSet.from_dict(d["labels"]) if d.get("labels") is not None else None
            return cls(name=d["name"], image_root=d["image_root"], images=images,
                       source=d.get("source", {}), version=d.get("version", MANIFEST_VERSION), labels=labels)
        except (KeyError, TypeError) as e:
            raise DataError(f"not a capcache manifest ({e}); create one with `capcache import`", path) from e

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Manifest":
        p = Path(path)
        if not p.is_file():
            raise DataError("manifest not found; create one with `capcache import` or `capcache demo`", p)
        try:
            d = read_json(p)
        except ValueError as e:
            raise DataError(f"manifest is not valid JSON ({e})", p) from e
        m = cls.from_dict(d, p)
        root = Path(m.image_root)
        if not root.is_absolute():  # keep a relative root meaningful wherever the caller runs from
            m.image_root = str((p.parent / root).resolve())
        return m
