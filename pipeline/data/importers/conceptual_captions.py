"""Google's Conceptual Captions TSVs: ``caption<TAB>url`` per line, no header.

``Train_GCC-training.tsv`` has 3,318,333 rows and ``Validation_GCC-1.1.0-Validation.tsv`` 15,840.
Every row is one image with its one caption and its URL. Its id is its index among the file's
rows, zero-padded to 9 digits: exactly the key img2dataset gives that row with its default 10,000
samples per shard (shard × 10,000 + index in the shard), so the manifest of a later download of
the same file (``capcache import img2dataset``) names every image the same; ``file`` is the name
img2dataset gives the image (``<key>.jpg``). Rows of another split than train get the split's
prefix (``id_prefix``), since each file numbers its rows from 0.

The rows are streamed (``streamed``): read line by line, written line by line, in memory that does
not grow with the file. A malformed row (no tab, an empty caption, a URL that is not http(s), bytes
that are not UTF-8) costs that row alone: it is listed with its file and line and skipped, and it
keeps its index, because img2dataset counts it too. Blank lines are not rows (img2dataset's CSV
reader drops them), nor is the ``caption<TAB>url`` header that img2dataset's instructions add.
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path
from typing import BinaryIO, Iterator

from pipeline.data.importers.reading import require_file
from pipeline.data.importers.streamed import Problems, SplitInputs, Streamed, StreamedImporter, id_prefix
from pipeline.data.manifest import ImageRecord
from pipeline.errors import DataError

SCHEMES = ("http://", "https://")


def read_conceptual_captions(inputs: SplitInputs, problems: Problems) -> Streamed:
    for split, paths in inputs.items():
        if len(paths) != 1:
            raise DataError(f"the {split} split got {len(paths)} TSV files; give one per split (each numbers "
                            "its rows from 0, as img2dataset does)")
        require_file(paths[0])
    files = {split: os.path.abspath(paths[0]) for split, paths in inputs.items()}
    records = (record for split, paths in inputs.items() for record in _rows(paths[0], split, problems))
    return Streamed("", {"format": "conceptual-captions", "files": files}, records)


def _rows(path: Path, split: str, problems: Problems) -> Iterator[ImageRecord]:
    try:
        with open(path, "rb") as f:
            if f.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:  # as spreadsheet programs write
                f.seek(0)
            yield from _records(f, path, split, problems)
    except OSError as e:
        raise DataError(f"cannot read ({e.strerror})", path) from e


def _records(f: BinaryIO, path: Path, split: str, problems: Problems) -> Iterator[ImageRecord]:
    """The loop runs once per row of a 3.3 M-row file: the common case is kept to a few str methods."""
    prefix, index = id_prefix(split), 0
    for number, raw in enumerate(f, 1):
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as e:
            problems.skip("malformed_row", path, number, f"not UTF-8 (byte {raw[e.start]:#04x}); row skipped")
            index += 1
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            if not line.strip():
                continue
            problems.skip("malformed_row", path, number, f"expected caption<TAB>url, got {len(fields) - 1} tabs: "
                                                         f"{line[:60]!r}; row skipped")
            index += 1
            continue
        caption, url = fields[0].strip(), fields[1].strip()
        if number == 1 and caption.lower() == "caption" and url.lower() == "url":
            continue  # the header img2dataset's instructions add
        key = f"{index:09d}"
        index += 1
        if not caption:
            problems.skip("empty_caption", path, number, f"empty caption for {url[:60]!r}; row skipped")
        elif not url.startswith(SCHEMES) and not url[:8].lower().startswith(SCHEMES):
            problems.skip("bad_url", path, number, f"URL is not http(s): {url[:60]!r}; row skipped")
        else:
            yield ImageRecord(prefix + key, key + ".jpg", split, [caption], url)


import_conceptual_captions = StreamedImporter(read_conceptual_captions)
