"""The Kaggle "flickr8k" caption file, ``captions.txt``: CSV ``image,caption``, commas quoted.

Most copies of this file are Flickr8k itself, so when most of its image names are in the
official split, that split is used and scores stay comparable with published ones; images outside
it are left out, as the flickr8k importer does, so both importers give the same manifest. Any
other data gets a seeded random split.

Repeated (image, caption) rows are kept, not treated as duplicates: in the real Flickr8k ten
images have two annotators who wrote the same sentence, and this format has no caption index to
tell a repeat from a copy error. A row with other than two fields, or a caption running over
several lines, is an error rather than a guess: it means broken CSV quoting, and reading on would
shift or swallow the captions that follow.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from pipeline.data.importers.intake import ImportOptions, Intake, Parsed
from pipeline.data.importers.reading import read_text
from pipeline.data.importers.splits import load_official_split, random_split, records_by_name
from pipeline.errors import DataError

HEADER = ["image", "caption"]


def import_kaggle(path: Path, options: ImportOptions) -> Parsed:
    intake = _read_rows(path)
    names = list(intake.captions)
    official = load_official_split()
    if 2 * sum(name in official for name in names) > len(names):
        split_of, how = official, "official flickr8k"
    else:
        split_of = random_split(names, options.split_ratios, options.split_seed)
        how = {"seed": options.split_seed, "ratios": list(options.split_ratios)}
    images = records_by_name(intake, split_of, "not in the official Flickr8k split")
    return intake.parsed(images, format="kaggle", split=how)


def _read_rows(path: Path) -> Intake:
    """Rows with the line each *starts* on: a quote left open swallows the lines after it, and the
    line to fix is where it opens, not where the reader gives up (often the end of the file)."""
    intake = Intake(path)
    reader = csv.reader(io.StringIO(read_text(path), newline=""), strict=True)
    start = 1  # the line the row being read starts on
    try:
        _check_header(next(reader, None), path, reader.line_num)
        start = reader.line_num + 1
        for row in reader:
            if row:
                _add_row(intake, row, start, reader.line_num)
            start = reader.line_num + 1
    except csv.Error as e:
        where = "" if reader.line_num == start else f"; a quote opened here is still open at line {reader.line_num}"
        raise DataError(f"malformed CSV ({e}{where})", path, start) from e
    return intake


def _check_header(header: list[str] | None, path: Path, number: int) -> None:
    if header is None:
        raise DataError("empty file; expected a header line 'image,caption'", path)
    if [h.strip().lower() for h in header] != HEADER:
        raise DataError(f"expected header 'image,caption', got {','.join(header)[:60]!r}", path, number)


def _add_row(intake: Intake, row: list[str], number: int, last: int) -> None:
    if len(row) != 2:
        raise DataError(f"expected 2 fields (image,caption), got {len(row)}; quote captions that contain commas",
                        intake.path, number)
    if "\n" in row[1]:
        raise DataError(f"caption runs over several lines (to line {last}): the quote that opens here is unbalanced",
                        intake.path, number)
    intake.add_file_caption(row[0].strip(), row[1], number)
