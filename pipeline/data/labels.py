"""The ``labels`` section of a manifest: multi-label image tagging data (seed 004).

Per image: its labels (the classes to predict) and, optionally, noisy user tags (an extra input
modality, as NUS-WIDE's 1k Flickr tags). The class list and the tag vocabulary are fixed here, so
every run on the manifest means the same thing by column ``j`` of a multi-hot vector.

The section sits beside the images and captions and is not part of the feature cache's key:
labelling a dataset (``capcache labels from-captions``) never makes its cache stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import DataError


@dataclass
class ImageLabels:
    labels: list[str]  # names from LabelSet.classes; may be empty (an image none of the classes describes)
    tags: list[str] = field(default_factory=list)  # names from LabelSet.tags


@dataclass
class LabelSet:
    classes: list[str]  # C label names, in column order
    images: dict[str, ImageLabels]  # image_id -> its labels and tags
    tags: list[str] = field(default_factory=list)  # T noisy-tag names, in column order ([] = no tag modality)
    source: dict = field(default_factory=dict)  # how the labels were made, for provenance

    def __post_init__(self) -> None:
        for name, values in (("class", self.classes), ("tag", self.tags)):
            if len(set(values)) != len(values):
                raise DataError(f"duplicate {name} names in the labels section")
        classes, tags = set(self.classes), set(self.tags)
        for image_id, entry in self.images.items():
            unknown = [x for x in entry.labels if x not in classes] or [x for x in entry.tags if x not in tags]
            if unknown:
                raise DataError(f"image {image_id!r} has label or tag {unknown[0]!r} that the labels section does "
                                "not list; add it to classes/tags or remove it")

    @property
    def has_tags(self) -> bool:
        return bool(self.tags)

    def label_matrix(self, image_ids: list[str]) -> np.ndarray:
        """[N, C] float32 multi-hot labels of ``image_ids`` (an image without an entry has none)."""
        return _multi_hot(image_ids, self.images, self.classes, lambda e: e.labels)

    def tag_matrix(self, image_ids: list[str]) -> np.ndarray:
        """[N, T] float32 multi-hot tags of ``image_ids``."""
        return _multi_hot(image_ids, self.images, self.tags, lambda e: e.tags)

    def to_dict(self) -> dict:
        return {"classes": self.classes, "tags": self.tags, "source": self.source,
                "images": {i: {"labels": e.labels, **({"tags": e.tags} if e.tags else {})}
                           for i, e in self.images.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "LabelSet":
        try:
            images = {i: ImageLabels(list(e["labels"]), list(e.get("tags", []))) for i, e in d["images"].items()}
            return cls(list(d["classes"]), images, list(d.get("tags", [])), dict(d.get("source", {})))
        except (KeyError, TypeError, AttributeError) as e:
            raise DataError(f"malformed labels section ({e!r}); write it with `capcache labels` or an importer") from e

    def restricted_to(self, image_ids: set[str]) -> "LabelSet":
        """The same classes and tags, for the images in ``image_ids`` only (e.g. after dropping missing files)."""
        return LabelSet(self.classes, {i: e for i, e in self.images.items() if i in image_ids}, self.tags, self.source)


def _multi_hot(image_ids: list[str], images: dict[str, ImageLabels], names: list[str], pick) -> np.ndarray:
    column = {name: j for j, name in enumerate(names)}
    out = np.zeros((len(image_ids), len(names)), dtype=np.float32)  # [N, C or T]
    for row, image_id in enumerate(image_ids):
        entry = images.get(image_id)
        if entry is not None:
            out[row, [column[x] for x in pick(entry)]] = 1.0
    return out
