"""What every importer shares: the options it is given, and how it gathers captions per image.

Formats differ in how they name images and splits, but not in what a usable caption is. Keeping
the caption rules here (strip, skip empty, flag one-letter) means the four importers cannot drift
apart, and the same Flickr8k captions come out whichever file format they arrived in.

Where a problem costs one caption or one image, the importer warns and goes on: a 40,000-line
file should not be unusable because of one blank caption. Where the file's structure is wrong
(a malformed line, a duplicate key, an unknown split), it stops with a ``DataError``: those mean
the wrong file or a damaged one, and guessing would give a silently wrong dataset.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from pipeline.data.labels import LabelSet
from pipeline.data.manifest import ImageRecord
from pipeline.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SHOWN = 5  # names quoted in an aggregated warning; the full lists are in ImportResult

# Where in a file something is: a line number for text formats, a JSON path such as
# "images[3]" for JSON ones, which the json module cannot map back to lines.
Where = int | str | None


@dataclass(frozen=True)
class ImportOptions:
    """Everything an importer may need beyond its file; each format reads only what applies to it."""

    split_seed: int = 0
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split: str | None = None  # coco: the split of the whole file
    split_files: dict[str, Path] | None = None  # flickr8k: split name -> list of image names
    karpathy_split: Path | None = None  # flickr30k-csv: Karpathy's dataset_flickr30k.json, whose split to apply


@dataclass
class Parsed:
    """An importer's output, before image files are checked against the disk."""

    images: list[ImageRecord]
    warnings: list[str]
    skipped: Counter
    source: dict
    labels: LabelSet | None = None  # tagging formats (NUS-WIDE, labels CSV): the manifest's labels section


def located(path: Path | None, where: Where, message: str) -> str:
    """``file:line: message``, the same shape as a ``DataError``, so warnings read like errors."""
    if isinstance(where, str):
        return str(DataError(f"{where}: {message}", path))
    return str(DataError(message, path, where))


def fail(path: Path | None, where: Where, message: str) -> DataError:
    return DataError(located(path, where, message))


class FirstSeen:
    """Remembers where each key first appeared, so a duplicate's error points at both places."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._first: dict[str, tuple[Path, Where]] = {}

    def add(self, key: str, path: Path, where: Where) -> None:
        if key in self._first:
            first_path, first = self._first[key]
            at = f"on line {first}" if isinstance(first, int) else f"at {first}"
            if first_path != path:
                at += f" of {first_path.name}"
            raise fail(path, where, f"duplicate {self.what} {key!r} (first {at})")
        self._first[key] = (path, where)


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def listing(names: list[str]) -> str:
    more = f", ... (+{len(names) - SHOWN} more)" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


class Intake:
    """Captions of one caption file, grouped per image in first-seen order, and what was left out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.captions: dict[str, list[str]] = {}
        self.warnings: list[str] = []
        self.skipped: Counter = Counter()

    def skip(self, reason: str, where: Where, message: str) -> None:
        self.skipped[reason] += 1
        self.warnings.append(located(self.path, where, message))

    def leave_out(self, reason: str, names: list[str], why: str) -> None:
        """One warning for many images left out for the same reason, so 92 do not bury the rest."""
        if names:
            self.skipped[reason] += len(names)
            self.warnings.append(located(self.path, None, f"{len(names)} images left out ({why}): {listing(names)}"))

    def add_caption(self, key: str, raw: str, where: Where) -> None:
        """Keep the caption as written (tokenising is done later, the same for every format).

        A one-letter caption such as Flickr8k's "A" is almost certainly truncated, but it is what
        the annotators left and published scores were computed with it, so it is kept and flagged.
        """
        caption = raw.strip()
        if not caption:
            self.skip("empty_caption", where, f"empty caption for {key!r} skipped")
            return
        if len(caption) == 1:
            self.warnings.append(located(self.path, where, f"one-letter caption {caption!r} for {key!r} kept"))
        self.captions.setdefault(key, []).append(caption)

    def add_file_caption(self, name: str, raw: str, where: Where) -> None:
        """For formats keyed by file name, where a key naming no image (Flickr8k's stray
        "2258277193_586949ec62.jpg.1") costs its caption and a warning, not the whole import."""
        if not is_image_name(name):
            self.skip("bad_image_name", where, f"{name!r} is not an image file name; its caption is skipped")
            return
        self.add_caption(name, raw, where)

    def records(self, placed: Iterable[tuple[str, str, str]], keep_uncaptioned: bool = False) -> list[ImageRecord]:
        """Records for (image id, file, split), in the order given.

        An image left without captions is left out (nothing to train or score on), except from a
        test-image list such as COCO's image_info_test, which has no captions by design.
        """
        placed = list(placed)
        if not keep_uncaptioned:
            self.leave_out("no_captions", [key for key, _, _ in placed if not self.captions.get(key)], "no captions")
        return [ImageRecord(key, file, split, self.captions.get(key, [])) for key, file, split in placed
                if keep_uncaptioned or self.captions.get(key)]

    def parsed(self, images: list[ImageRecord], **source: object) -> Parsed:
        return Parsed(images, self.warnings, self.skipped, {**source, "file": str(self.path)})
