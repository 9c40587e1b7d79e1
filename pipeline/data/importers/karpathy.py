"""Karpathy's split files, ``dataset_{flickr8k,flickr30k,coco}.json``, used by most captioning papers.

Each entry carries its own split (train/val/test, and restval for COCO), so nothing is guessed.
The image id is the COCO id when there is one, so a COCO manifest imported from this file and one
imported from the COCO annotations name the same images alike; otherwise it is the file name.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data.importers.intake import FirstSeen, ImportOptions, Intake, Parsed, fail
from pipeline.data.importers.jsonfields import ID, entries, field
from pipeline.data.importers.reading import read_json_file
from pipeline.data.importers.splits import split_name


def import_karpathy(path: Path, options: ImportOptions) -> Parsed:
    data = read_json_file(path)
    intake = Intake(path)
    placed: list[tuple[str, str, str]] = []
    ids = FirstSeen("image id")
    for i, entry in enumerate(entries(data, "images", path, "Karpathy split (dataset_*.json)")):
        where = f"images[{i}]"
        filename = field(entry, "filename", str, path, where)
        folder = field(entry, "filepath", str, path, where, required=False)
        split = split_name(field(entry, "split", str, path, where), path, where)
        cocoid = field(entry, "cocoid", ID, path, where, required=False)
        image_id = filename if cocoid is None else str(cocoid)
        ids.add(image_id, path, where)
        for j, sentence in enumerate(field(entry, "sentences", list, path, where)):
            at = f"{where}.sentences[{j}]"
            if not isinstance(sentence, dict):
                raise fail(path, at, f"expected a JSON object, got {type(sentence).__name__}")
            intake.add_caption(image_id, field(sentence, "raw", str, path, at), at)
        placed.append((image_id, f"{folder}/{filename}" if folder else filename, split))
    return intake.parsed(intake.records(placed), format="karpathy", dataset=data.get("dataset"))
