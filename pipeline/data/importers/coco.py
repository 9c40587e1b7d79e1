"""COCO caption annotations, ``captions_{train,val}2014.json``, and the test lists ``image_info_test*.json``.

A COCO file is one split, so the split is given by the caller or read from the file name
(train/val/test). Test-image lists carry no ``annotations`` at all; their images are kept with no
captions, for generating captions to submit, while a train or val file without them is an error.
Annotations pointing at an image the file does not list are an error, not a skip: they mean the
images and annotations came from different files.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data.importers.intake import FirstSeen, ImportOptions, Intake, Parsed, fail
from pipeline.data.importers.jsonfields import ID, entries, field
from pipeline.data.importers.reading import read_json_file
from pipeline.data.importers.splits import split_name
from pipeline.errors import DataError

WHAT = "COCO captions (captions_*.json)"


def import_coco(path: Path, options: ImportOptions) -> Parsed:
    data = read_json_file(path)
    files = _image_files(data, path)
    split = split_name(options.split, path, "split") if options.split else _split_from_name(path)
    uncaptioned = isinstance(data, dict) and "annotations" not in data
    if uncaptioned and split != "test":
        raise DataError(f"no 'annotations' in a {split} file; only test-image lists come without captions", path)
    intake = Intake(path)
    ids = FirstSeen("annotation id")
    for j, annotation in enumerate([] if uncaptioned else entries(data, "annotations", path, WHAT)):
        where = f"annotations[{j}]"
        ids.add(str(field(annotation, "id", ID, path, where)), path, where)
        image_id = str(field(annotation, "image_id", ID, path, where))
        if image_id not in files:
            raise fail(path, where, f"image_id {image_id} is not in this file's 'images'")
        intake.add_caption(image_id, field(annotation, "caption", str, path, where), where)
    images = intake.records(((i, f, split) for i, f in files.items()), keep_uncaptioned=uncaptioned)
    return intake.parsed(images, format="coco", split=split)


def _image_files(data: object, path: Path) -> dict[str, str]:
    """COCO image id (as a string, the manifest's id type) -> file name, in file order."""
    files: dict[str, str] = {}
    ids = FirstSeen("image id")
    for i, entry in enumerate(entries(data, "images", path, WHAT)):
        where = f"images[{i}]"
        image_id = str(field(entry, "id", ID, path, where))
        ids.add(image_id, path, where)
        files[image_id] = field(entry, "file_name", str, path, where)
    return files


def _split_from_name(path: Path) -> str:
    found = [s for s in ("train", "val", "test") if s in path.stem.lower()]
    if len(found) != 1:
        raise DataError("cannot tell the split from the file name; pass the split (train, val or test)", path)
    return found[0]
