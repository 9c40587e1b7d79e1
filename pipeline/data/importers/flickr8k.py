"""Flickr8k's own release: ``Flickr8k.token.txt`` (``IMAGE.jpg#N<TAB>caption``) and its split lists.

The split comes from ``Flickr_8k.{train,dev,test}Images.txt``, found beside the token file or
given explicitly, because those lists are what every published Flickr8k result used. The real
token file names 92 images that are in none of them, and one stray key
("2258277193_586949ec62.jpg.1#0") that names no image; both are reported and left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from pipeline.data.importers.intake import FirstSeen, ImportOptions, Intake, Parsed, is_image_name
from pipeline.data.importers.reading import text_lines
from pipeline.data.importers.splits import records_by_name, split_name
from pipeline.errors import DataError

SPLIT_LISTS = {
    "train": "Flickr_8k.trainImages.txt",
    "val": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}


def import_flickr8k(path: Path, options: ImportOptions) -> Parsed:
    intake = Intake(path)
    keys = FirstSeen("caption")
    for number, line in text_lines(path):
        key, tab, caption = line.partition("\t")
        name, hash_, index = key.strip().rpartition("#")
        if not (tab and hash_ and name and index.isdecimal()):
            raise DataError(f"expected 'IMAGE#N<TAB>caption', got {line[:60]!r}", path, number)
        keys.add(f"{name}#{int(index)}", path, number)
        intake.add_file_caption(name, caption, number)
    lists = _split_lists(path, options.split_files)
    images = records_by_name(intake, _read_split_lists(lists), "in no split list")
    return intake.parsed(images, format="flickr8k", split_lists={s: str(p) for s, p in lists.items()})


def _split_lists(token_file: Path, given: Mapping[str, Path] | None) -> dict[str, Path]:
    if given is not None:
        return {split_name(split, None, "split_files"): p for split, p in given.items()}
    found = {split: token_file.parent / name for split, name in SPLIT_LISTS.items()}
    absent = [p.name for p in found.values() if not p.is_file()]
    if absent:
        raise DataError(f"split lists {', '.join(absent)} not found beside it; put them there or pass split_files",
                        token_file)
    return found


def _read_split_lists(lists: Mapping[str, Path]) -> dict[str, str]:
    """Image name -> split; an image in two lists is an error, since either choice would leak test data."""
    split_of: dict[str, str] = {}
    listed = FirstSeen("image name")
    for split, path in lists.items():
        for number, line in text_lines(path):
            name = line.strip()
            if not is_image_name(name) or len(name.split()) != 1:
                raise DataError(f"expected one image file name per line, got {name[:60]!r}", path, number)
            listed.add(name, path, number)
            split_of[name] = split
    return split_of
