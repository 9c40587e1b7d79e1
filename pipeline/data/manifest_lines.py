"""JSON Lines manifests: a header line, then one image record per line, so a web-scale set streams.

A JSON document is built whole before its first byte is written and parsed whole before its first
image can be read: for Conceptual Captions' 3.3 M images that is gigabytes of Python objects on
either side. In this form the first line holds everything a ``Manifest`` has besides its images
(name, image_root, source, version, and labels when there are any) and each further line is one
record, so an importer writes records as it reads them and nothing holds them all.

``Manifest.load`` tells the two forms apart by the first line: a JSON document's is ``{`` (or, for
a one-line document, an object with "images"); a header is a complete object without "images".
Both forms hold the same records, so which one a set uses changes nothing downstream.
"""

from __future__ import annotations

import json
import os
from json.encoder import c_make_encoder, encode_basestring
from itertools import chain
from pathlib import Path
from typing import Iterable, Iterator

from pipeline.errors import DataError
from pipeline.io import atomic_write_lines

SUFFIX = ".jsonl"

# json's C encoder, compact and UTF-8 as written, built once: ``json.dumps`` builds a new one per
# call, which is most of the cost of a short record (4.9 against 1.7 µs on the 2-core machine).
_ENCODER = c_make_encoder and c_make_encoder(None, json.JSONEncoder().default, encode_basestring, None, ":", ",",
                                              False, False, True)


def encode_line(obj: dict) -> str:
    if _ENCODER is None:  # a Python built without json's C accelerator
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return "".join(_ENCODER(obj, 0))


def write_manifest_lines(path: str | os.PathLike, header: dict, records: Iterable[dict]) -> Path:
    """Write ``header`` and then each record as it comes, atomically (see ``atomic_write_lines``)."""
    return atomic_write_lines(path, chain([encode_line(header)], map(encode_line, records)))


def is_manifest_lines(path: Path) -> bool:
    with open(path, "rb") as f:
        first = f.readline()
    try:
        head = json.loads(first)
    except ValueError:
        return False
    return isinstance(head, dict) and "images" not in head


def read_manifest_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line: the header first, then the records."""
    number = 0
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"not valid JSON ({e.msg}, column {e.colno})", path, number) from e
                if not isinstance(obj, dict):
                    raise DataError("expected a JSON object (a manifest header or image record)", path, number)
                yield number, obj
    except UnicodeDecodeError as e:
        raise DataError("not UTF-8 text; a manifest is written as UTF-8", path, number + 1) from e
