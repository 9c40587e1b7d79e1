"""Importing web-scale sets: records go from the input to the manifest file one at a time.

A Conceptual Captions TSV has 3.3 M rows. Held as a list of records and checked against a set of
ids (as a ``Manifest`` in memory is), it costs gigabytes before the first byte is written. A
streamed importer instead yields its records, which ``import_streamed`` writes to a JSON Lines
manifest as they come, counting what the summary reports (``Tally``). Nothing remembers the ids:
they are unique by construction (a row index or an img2dataset key, one numbering per input and
a prefix per split, see ``id_prefix``). Problems are counted in full but listed only up to
``LISTED`` per kind, so a file with a million bad rows still imports in bounded memory.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from pipeline.data.importers.intake import Where, located
from pipeline.data.importers.report import ImportResult, Tally
from pipeline.data.manifest import ImageRecord, Manifest
from pipeline.data.manifest_lines import SUFFIX, write_manifest_lines
from pipeline.errors import DataError

LISTED = 100  # warnings kept per kind of problem; the rest are counted

SplitInputs = Mapping[str, Sequence[Path]]  # split -> the files or folders read into it, in order


def id_prefix(split: str) -> str:
    """What goes before the row or sample key of an input of ``split`` to make its image id.

    Each input numbers its rows from 0 (a TSV's row index, img2dataset's key), so train and val
    would collide: train keeps the bare key, which is what img2dataset calls that row, and every
    other split prefixes its name (``val-000000000``).
    """
    return "" if split == "train" else f"{split}-"


class Problems:
    """What was left out on the way: every problem counted, the first ``LISTED`` of each kind listed."""

    def __init__(self) -> None:
        self.skipped: Counter = Counter()
        self.listed: list[str] = []

    def skip(self, reason: str, path: Path, where: Where, message: str) -> None:
        self.skipped[reason] += 1
        if self.skipped[reason] <= LISTED:
            self.listed.append(located(path, where, message))

    def warnings(self) -> list[str]:
        return self.listed + [f"... and {n - LISTED:,} more {reason} not listed"
                              for reason, n in sorted(self.skipped.items()) if n > LISTED]


@dataclass(frozen=True)
class Streamed:
    """A streamed importer's answer: what the manifest's header says, and its records, read lazily."""

    image_root: str  # "" for a URL list, which has no image folder
    source: dict
    records: Iterator[ImageRecord]
    notes: list[str] = field(default_factory=list)  # information for the summary


@dataclass(frozen=True)
class StreamedImporter:
    """An entry of ``IMPORTERS`` whose records are streamed to a JSON Lines manifest."""

    read: Callable[[SplitInputs, Problems], Streamed]


def import_streamed(importer: StreamedImporter, inputs: SplitInputs, name: str, out: Path) -> ImportResult:
    if out.suffix != SUFFIX:
        raise DataError(f"a streamed import writes a JSON Lines manifest; name it {out.stem}{SUFFIX}", out)
    problems = Problems()
    streamed = importer.read(inputs, problems)
    header = Manifest(name=name, image_root=streamed.image_root, images=[], source=streamed.source).header()
    tally = Tally(name, streamed.source["format"])
    write_manifest_lines(out, header, _counted(streamed.records, tally, inputs, problems))
    return ImportResult(tally, problems.warnings(), [], dict(problems.skipped), streamed.notes, path=out)


def _counted(records: Iterable[ImageRecord], tally: Tally, inputs: SplitInputs, problems: Problems) -> Iterator[dict]:
    for record in records:
        tally.add(record)
        yield record.to_dict()
    if not tally.images:  # raised inside the write, so no manifest is left behind
        first = next(path for paths in inputs.values() for path in paths)
        why = f" (first problem: {problems.listed[0]})" if problems.listed else ""
        raise DataError(f"no images with captions found{why}; check the format and the input", first)
