"""Kaggle's Flickr30k caption file, ``results.csv``: ``image_name| comment_number| comment``.

The file seed 001's Kaggle users attach (the "flickr-image-dataset" upload): pipe-separated, a
space after each pipe, five captions per image numbered 0..4, no split. With Karpathy's
``dataset_flickr30k.json`` (``karpathy_split``) the images get the split every published
Flickr30k number uses (29,000 / 1,014 / 1,000), and images it does not list are left out;
without it, a seeded random split is drawn, as for any unsplit data.

The upload has a known broken row (``2199200615.jpg| 4 A dog runs across the grass .``, its
second pipe missing). A row that cannot be read costs that caption only: it is reported with its
file and line and skipped, so the other 158,914 captions import, rather than the whole file failing.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data.importers.intake import ImportOptions, Intake, Parsed, fail
from pipeline.data.importers.jsonfields import entries, field
from pipeline.data.importers.reading import read_json_file, read_text
from pipeline.data.importers.splits import random_split, records_by_name, split_name

HEADER = ["image_name", "comment_number", "comment"]


def import_flickr30k_csv(path: Path, options: ImportOptions) -> Parsed:
    intake = _read_rows(path)
    if options.karpathy_split is not None:
        split_of, how = karpathy_splits(options.karpathy_split), f"karpathy ({options.karpathy_split.name})"
        why = f"not in {options.karpathy_split.name}"
    else:
        split_of = random_split(list(intake.captions), options.split_ratios, options.split_seed)
        how, why = {"seed": options.split_seed, "ratios": list(options.split_ratios)}, "unsplit"
    return intake.parsed(records_by_name(intake, split_of, why), format="flickr30k-csv", split=how)


def karpathy_splits(path: Path) -> dict[str, str]:
    """File name -> split, from a Karpathy ``dataset_*.json`` (restval counts as train data later)."""
    data = read_json_file(path)
    out: dict[str, str] = {}
    for i, entry in enumerate(entries(data, "images", path, "Karpathy split (dataset_flickr30k.json)")):
        where = f"images[{i}]"
        out[field(entry, "filename", str, path, where)] = split_name(field(entry, "split", str, path, where), path, where)
    return out


def _read_rows(path: Path) -> Intake:
    intake = Intake(path)
    lines = read_text(path).splitlines()
    if not lines:
        raise fail(path, None, f"empty file; expected a header line {'| '.join(HEADER)!r}")
    if [h.strip().lower() for h in lines[0].split("|")] != HEADER:
        raise fail(path, 1, f"expected the header {'| '.join(HEADER)!r}, got {lines[0][:60]!r}; "
                            "is this Kaggle's Flickr30k results.csv?")
    first_line: dict[tuple[str, str], int] = {}  # (image, caption number) -> the line it was first on
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("|", 2)]
        if len(fields) != 3 or not fields[1].isdigit():
            intake.skip("malformed_row", number, f"malformed row skipped (expected image_name| comment_number| "
                                                 f"comment): {line[:60]!r}")
            continue
        name, index, caption = fields
        if (name, index) in first_line:  # the same caption number twice: keep the first, report the other
            intake.skip("duplicate_caption", number, f"caption {index} of {name!r} again (first on line "
                                                     f"{first_line[name, index]}); skipped")
            continue
        first_line[name, index] = number
        intake.add_file_caption(name, caption, number)
    return intake
