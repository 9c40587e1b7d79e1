"""Where an image's split comes from: the file itself, the official Flickr8k lists, or a seeded draw.

Scores are only comparable with the literature when test images are the published test images,
so a known split always wins; a random split is the fallback for data nobody has split before,
and it is seeded so that re-importing the same file gives the same split every time.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Mapping, Sequence

from pipeline.data.importers.intake import Intake, Where, fail
from pipeline.data.importers.reading import read_json_file
from pipeline.data.manifest import SPLITS, ImageRecord
from pipeline.errors import DataError

# data_manifests/flickr8k_split.json, reached through a link inside the package so that a plain
# (non-editable) `pip install`, as on Kaggle, ships it too.
OFFICIAL_SPLIT_FILE = Path(__file__).resolve().parents[1] / "flickr8k_split.json"
ALIASES = {"dev": "val"}  # Flickr8k calls its validation split "dev"


def split_name(raw: object, path: Path | None, where: Where) -> str:
    name = ALIASES.get(raw, raw) if isinstance(raw, str) else raw
    if name not in SPLITS:
        raise fail(path, where, f"unknown split {raw!r}; use one of {', '.join(SPLITS)}")
    return name


def load_official_split(path: Path = OFFICIAL_SPLIT_FILE) -> dict[str, str]:
    """Image name -> split of the official Flickr8k split (6,000/1,000/1,000), shipped with capcache."""
    if not path.is_file():
        raise DataError("the official Flickr8k split is missing from this install; reinstall capcache", path)
    lists = read_json_file(path)
    if not isinstance(lists, dict):
        raise DataError("expected {split: [image names]}", path)
    split_of: dict[str, str] = {}
    for raw, names in lists.items():
        split = split_name(raw, path, None)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError(f"split {raw!r} is not a list of image names", path)
        for name in names:
            if name in split_of:
                raise DataError(f"{name!r} is in both {split_of[name]!r} and {split!r}", path)
            split_of[name] = split
    return split_of


def random_split(names: Sequence[str], ratios: Sequence[float], seed: int) -> dict[str, str]:
    """Train/val/test by seeded shuffle of the sorted names, so neither file order nor run matters."""
    valid = len(ratios) == 3 and all(math.isfinite(r) and r >= 0 for r in ratios) and math.isclose(sum(ratios), 1.0)
    if not valid:
        raise DataError(f"split ratios must be three numbers >= 0 (train, val, test) summing to 1, got {tuple(ratios)}")
    order = sorted(names)
    random.Random(seed).shuffle(order)
    n_train = round(ratios[0] * len(order))
    n_val = round(ratios[1] * len(order))
    return {name: "train" if i < n_train else "val" if i < n_train + n_val else "test" for i, name in enumerate(order)}


def records_by_name(intake: Intake, split_of: Mapping[str, str], why_unsplit: str) -> list[ImageRecord]:
    """Records for Flickr-style data, where the file name is the image id.

    Images without a split are left out rather than guessed into one: putting an image nobody
    assigned into train (or, worse, test) would make results differ from everyone else's.
    """
    intake.leave_out("not_in_split", [name for name in intake.captions if name not in split_of], why_unsplit)
    return intake.records((name, name, split_of[name]) for name in intake.captions if name in split_of)
