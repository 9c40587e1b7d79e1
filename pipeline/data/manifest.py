"""The Manifest: one dataset, every format's importer translates into it.

A manifest names each image once (id, file relative to ``image_root``, split) with its raw
captions. Tokenisation happens later, the same way for every source format, so two importers of
the same data give the same training run.

It is saved as one JSON document (``.json``, every manifest before the web-scale sets) or as JSON
Lines (``.jsonl``: a header line, then one record per line, see ``manifest_lines``), which an
importer can write record by record; ``load`` reads either.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.data.image_source import ImageSource, holding_name, source_of
from pipeline.data.labels import LabelSet
from pipeline.data.manifest_lines import SUFFIX, is_manifest_lines, read_manifest_lines, write_manifest_lines
from pipeline.errors import DataError
from pipeline.io import atomic_write_json, read_json

SPLITS = ("train", "val", "test", "restval")
MANIFEST_VERSION = 1


@dataclass(slots=True)  # no per-record __dict__: a loaded 3.3 M-image manifest is mostly these
class ImageRecord:
    image_id: str
    file: str  # relative to Manifest.image_root; inside ``shard`` when that is set
    split: str  # one of SPLITS
    captions: list[str]
    url: str | None = None  # where a web image was published (Conceptual Captions, img2dataset)
    shard: str | None = None  # the img2dataset tar holding ``file``, relative to Manifest.image_root
    key: str | None = None  # img2dataset's key of the sample (webdataset's ``__key__``)

    def to_dict(self) -> dict:
        """The saved form; an optional field only when set, so a record without them (every one
        imported before the web formats) is saved byte for byte as it always was."""
        d = {"image_id": self.image_id, "file": self.file, "split": self.split, "captions": self.captions}
        if self.url is not None:  # spelled out, not a loop over the fields: this runs 3.3 M times an import
            d["url"] = self.url
        if self.shard is not None:
            d["shard"] = self.shard
        if self.key is not None:
            d["key"] = self.key
        return d


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

    def require_image_files(self) -> None:
        """Refuse, in one line, a manifest that has no images to read yet.

        ``capcache extract`` decodes image files and members of img2dataset tars. A URL list (a
        Conceptual Captions TSV import, no image folder) has nothing to decode yet, which would
        otherwise end as "N of N images are missing", pointing at the wrong fix.
        """
        if not self.image_root:
            raise DataError(f"manifest {self.name!r} lists image URLs only, with no image folder; download the "
                            "images with img2dataset and import its output folder with `capcache import "
                            "img2dataset FOLDER --out NAME` (docs/web_datasets.md)")

    def image_path(self, rec: ImageRecord, base: str | os.PathLike | None = None) -> Path:
        """Absolute path of an image file; ``base`` is the manifest's folder for a relative root.

        Inside an img2dataset shard there is no such file: read a record through ``image_source``."""
        return self._root(base) / rec.file

    def image_source(self, rec: ImageRecord, base: str | os.PathLike | None = None) -> ImageSource:
        """Where the image's bytes are: ``.file`` is the file that holds it (the image, or its shard's
        tar), which extraction stats and opens; ``.member`` its name inside a tar."""
        return source_of(self._root(base), rec)

    def image_files(self, base: str | os.PathLike | None = None) -> list[str]:
        """The file that holds each image, in row order: the image file, or the tar of a shard's
        record (whose size and mtime stand for each of its images). What extraction stats; strings,
        since a Path costs about 10 µs to build, a second per 100 k images before any work."""
        root = str(self._root(base))
        return [os.path.join(root, holding_name(r)) for r in self.images]

    def _root(self, base: str | os.PathLike | None) -> Path:
        root = Path(self.image_root)
        return Path(base) / root if not root.is_absolute() and base is not None else root

    # -- persistence -----------------------------------------------------------------------
    def header(self) -> dict:
        """Everything but the images: a JSON Lines manifest's first line."""
        return {"name": self.name, "image_root": self.image_root, **self._after_images()}

    def to_dict(self) -> dict:
        """The JSON document, its keys in the order manifests have always had them."""
        return {"name": self.name, "image_root": self.image_root, "images": [r.to_dict() for r in self.images],
                **self._after_images()}

    def _after_images(self) -> dict:
        return {"source": self.source, "version": self.version,
                **({"labels": self.labels.to_dict()} if self.labels is not None else {})}

    @classmethod
    def from_dict(cls, d: dict, path: object = "<manifest>") -> "Manifest":
        try:
            return cls._from_header(d, [ImageRecord(**r) for r in d["images"]])
        except (KeyError, TypeError) as e:
            raise DataError(f"not a capcache manifest ({e}); create one with `capcache import`", path) from e

    @classmethod
    def _from_header(cls, head: dict, images: list[ImageRecord]) -> "Manifest":
        labels = LabelSet.from_dict(head["labels"]) if head.get("labels") is not None else None
        return cls(name=head["name"], image_root=head["image_root"], images=images, source=head.get("source", {}),
                   version=head.get("version", MANIFEST_VERSION), labels=labels)

    def save(self, path: str | os.PathLike) -> Path:
        """A ``.jsonl`` path is written as JSON Lines, any other as one JSON document."""
        if Path(path).suffix == SUFFIX:
            return write_manifest_lines(path, self.header(), (r.to_dict() for r in self.images))
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Manifest":
        p = Path(path)
        if not p.is_file():
            raise DataError("manifest not found; create one with `capcache import` or `capcache demo`", p)
        m = cls._load_lines(p) if is_manifest_lines(p) else cls._load_document(p)
        root = Path(m.image_root)
        if m.image_root and not root.is_absolute():  # keep a relative root meaningful wherever the caller runs from
            m.image_root = str((p.parent / root).resolve())
        return m

    @classmethod
    def _load_document(cls, p: Path) -> "Manifest":
        try:
            d = read_json(p)
        except ValueError as e:
            raise DataError(f"manifest is not valid JSON ({e})", p) from e
        return cls.from_dict(d, p)

    @classmethod
    def _load_lines(cls, p: Path) -> "Manifest":
        lines = read_manifest_lines(p)
        _, head = next(lines)
        images = []
        for number, record in lines:
            try:
                record["split"] = sys.intern(record["split"])  # one "train" for 3.3 M records, not 3.3 M of them
                images.append(ImageRecord(**record))
            except (KeyError, TypeError) as e:
                raise DataError(f"not a manifest image record ({e})", p, number) from e
        try:
            return cls._from_header(head, images)
        except (KeyError, TypeError) as e:
            raise DataError(f"not a capcache manifest header ({e}); create one with `capcache import`", p, 1) from e
