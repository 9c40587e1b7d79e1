"""A plain labels CSV, for tagging data in no published layout: ``image,labels`` and optionally ``tags``, ``split``.

``image`` comes first and is a file name relative to the image folder, which is also the image id
(as in the Flickr importers); the other columns may come in any order, and header names are
case-insensitive. ``labels`` and ``tags`` are ``;``-separated lists. The class list and the tag
vocabulary are the sorted sets of what the file uses, so the same file always gives the same columns.
Without a ``split`` column the split is a seeded random draw (``split_seed``, ``split_ratios``).

A row with no labels keeps its image, with an empty label list and one warning for all such rows:
"none of these classes" is a real answer the model has to learn (a folder of negatives, say), and
dropping those images would make every image look like it contains something. Structural problems
(an unknown column, a field count that does not match the header, a duplicate image, an unknown
split, broken quoting) are errors, as in the kaggle importer: they mean a damaged file.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.data.importers.intake import (FirstSeen, ImportOptions, Intake, Parsed, fail, is_image_name, listing,
                                              located)
from pipeline.data.importers.reading import read_text
from pipeline.data.importers.splits import random_split, split_name
from pipeline.data.labels import ImageLabels, LabelSet
from pipeline.data.manifest import ImageRecord
from pipeline.errors import DataError

OPTIONAL = ("tags", "split")
HEADER_HELP = "a header line 'image,labels', optionally with 'tags' and 'split' columns after 'image'"


@dataclass
class _Row:
    labels: list[str]
    tags: list[str]
    split: str | None  # None without a split column


def import_labels_csv(path: Path, options: ImportOptions) -> Parsed:
    intake = Intake(path)
    columns, rows = _read_rows(path, intake)
    if "split" in columns:
        split_of, how = {name: row.split for name, row in rows.items()}, "split column"
    else:
        split_of = random_split(list(rows), options.split_ratios, options.split_seed)
        how = {"seed": options.split_seed, "ratios": list(options.split_ratios)}
    unlabelled = [name for name, row in rows.items() if not row.labels]
    if unlabelled:
        intake.warnings.append(located(path, None, f"{len(unlabelled)} images have no label, kept (as images none "
                                                   f"of the classes describes): {listing(unlabelled)}"))
    source = {"format": "labels-csv", "split": how, "file": str(path)}
    labels = LabelSet(sorted({x for row in rows.values() for x in row.labels}),
                      {name: ImageLabels(row.labels, row.tags) for name, row in rows.items()},
                      sorted({x for row in rows.values() for x in row.tags}), source)
    images = [ImageRecord(name, name, split_of[name], []) for name in rows]
    return replace(intake.parsed(images, **source), labels=labels)


def _read_rows(path: Path, intake: Intake) -> tuple[list[str], dict[str, _Row]]:
    """The header's column names and the rows by image, in file order.

    Each row is placed at the line it *starts* on, as in the kaggle importer: a quote left open
    swallows the lines after it, and the line to fix is where it opens.
    """
    reader = csv.reader(io.StringIO(read_text(path), newline=""), strict=True)
    rows: dict[str, _Row] = {}
    seen = FirstSeen("image")
    start = 1  # the line the row being read starts on
    try:
        columns = _columns(next(reader, None), path, reader.line_num)
        start = reader.line_num + 1
        for fields in reader:
            if fields:
                _check_fields(fields, columns, path, start, reader.line_num)
                _add_row(intake, rows, seen, dict(zip(columns, fields)), start)
            start = reader.line_num + 1
    except csv.Error as e:
        where = "" if reader.line_num == start else f"; a quote opened here is still open at line {reader.line_num}"
        raise DataError(f"malformed CSV ({e}{where})", path, start) from e
    return columns, rows


def _columns(header: list[str] | None, path: Path, number: int) -> list[str]:
    if header is None:
        raise DataError(f"empty file; expected {HEADER_HELP}", path)
    names = [h.strip().lower() for h in header]
    if not names or names[0] != "image" or "labels" not in names[1:]:
        raise fail(path, number, f"expected {HEADER_HELP}, got {','.join(header)[:60]!r}")
    for i, name in enumerate(names[1:], 1):
        if name not in ("labels", *OPTIONAL):
            raise fail(path, number, f"unknown column {header[i].strip()!r}; "
                                     "the columns are image, labels, tags, split")
        if name in names[:i]:
            raise fail(path, number, f"column {name!r} appears twice")
    return names


def _check_fields(fields: list[str], columns: list[str], path: Path, number: int, last: int) -> None:
    if len(fields) != len(columns):
        raise fail(path, number, f"expected {len(columns)} fields ({','.join(columns)}), got {len(fields)}; "
                                 "quote fields that contain commas")
    if any("\n" in f for f in fields):
        raise fail(path, number, f"a field runs over several lines (to line {last}): the quote that opens here is "
                                 "unbalanced")


def _add_row(intake: Intake, rows: dict[str, _Row], seen: FirstSeen, cell: dict[str, str], number: int) -> None:
    """A name that is no image file costs its row and a warning, as a stray key does in the Flickr importers."""
    name = cell["image"].strip()
    if not is_image_name(name):
        intake.skip("bad_image_name", number, f"{name!r} is not an image file name; its row is skipped")
        return
    seen.add(name, intake.path, number)
    split = split_name(cell["split"].strip(), intake.path, number) if "split" in cell else None
    rows[name] = _Row(_items(cell["labels"]), _items(cell.get("tags", "")), split)


def _items(cell: str) -> list[str]:
    """``"dog; beach;;dog"`` -> ``["dog", "beach"]``: stripped, empty entries ignored, repeats once (a
    multi-hot vector has one column per name)."""
    return list(dict.fromkeys(x.strip() for x in cell.split(";") if x.strip()))
