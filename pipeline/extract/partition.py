"""How a cache written in parts is cut: slices of rows, dealt to the ranks of a torchrun job.

The cut is recorded in ``<cache>.parts/partition.json`` when the first job starts, and every later
run keeps it whatever its number of processes, so a job re-run on other GPUs or nodes resumes the
same part files (a later run that asks for another ``rows_per_part`` is refused). Rank r takes
parts r, r + world, r + 2 world, ... By default the first job cuts parts of up to 10,000 rows,
smaller where that would leave a process fewer than ``PARTS_PER_PROCESS`` parts: Flickr8k's
8,000 images in one part would leave every rank but one idle. Rows inside img2dataset tars are
cut only where one tar ends and the next begins, so each rank takes whole shards and no tar is
streamed by two ranks (a tar larger than a part is a part of its own); a folder's files are cut
every ``rows_per_part`` rows.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from pipeline.cache.parts import parts_folder
from pipeline.errors import CapcacheError
from pipeline.io import atomic_write_json, read_json

ROWS_PER_PART = 10_000  # img2dataset's default shard size: a web dataset's shard and a part hold the same images
PARTS_PER_PROCESS = 4  # at least, by default: the ranks' shares stay within a part of each other


@dataclass(frozen=True)
class Partition:
    n_rows: int
    rows_per_part: int  # the most rows of a part, but for a tar larger than that
    starts: tuple[int, ...] | None = None  # each part's first row when cut at tar ends; None: every rows_per_part rows

    def __post_init__(self) -> None:
        if self.rows_per_part < 1:
            raise CapcacheError(f"rows per part {self.rows_per_part} is out of range; it must be at least 1")
        if self.starts is not None:
            object.__setattr__(self, "starts", tuple(self.starts))  # read back from JSON as a list

    @property
    def n_parts(self) -> int:
        return len(self.starts) if self.starts is not None else -(-self.n_rows // self.rows_per_part)

    def ranges(self) -> list[tuple[int, int]]:
        """[(start, stop)] of every part, in row order."""
        starts = list(self.starts if self.starts is not None else range(0, self.n_rows, self.rows_per_part))
        return list(zip(starts, [*starts[1:], self.n_rows]))

    def of_rank(self, rank: int, world: int) -> list[int]:
        """Indices of the parts rank ``rank`` of ``world`` writes."""
        return list(range(rank, self.n_parts, world))

    def rows_of_rank(self, rank: int, world: int) -> int:
        ranges = self.ranges()
        return sum(ranges[i][1] - ranges[i][0] for i in self.of_rank(rank, world))


def default_rows_per_part(n_rows: int, world: int) -> int:
    return max(1, min(ROWS_PER_PART, -(-n_rows // (PARTS_PER_PROCESS * world))))


def cut(holders: Sequence[str], rows_per_part: int) -> Partition:
    """Parts of up to ``rows_per_part`` rows that never split the rows of one file: ``holders`` [N]
    names the file holding each row's image (``holding_name``), an img2dataset tar for many rows."""
    starts, size, row = [], 0, 0
    for _, same_file in itertools.groupby(holders):  # a tar's rows in a row are never cut apart
        run = sum(1 for _ in same_file)
        if not starts or size + run > rows_per_part:
            starts.append(row)
            size = 0
        size += run
        row += run
    fixed = Partition(len(holders), rows_per_part)
    if [start for start, _ in fixed.ranges()] == starts:
        return fixed  # a folder of files: the plain cut
    return Partition(len(holders), rows_per_part, tuple(starts))


def settled_partition(cache: Path, holders: Sequence[str], rows_per_part: int | None, world: int) -> Partition:
    """The partition of ``cache``: the recorded one when its parts were started before (refusing a
    different ``rows_per_part``), else a new one (``rows_per_part`` or the default for ``world``
    processes, ``cut`` at the ends of the files in ``holders`` [N]), recorded."""
    n_rows = len(holders)
    stored = recorded_partition(cache)
    record = _record(cache)
    if stored is not None:
        if stored.n_rows != n_rows:
            raise CapcacheError(f"{record} cuts {stored.n_rows} rows, this cache has {n_rows}; delete {record.parent} "
                                "and extract again")
        if rows_per_part is not None and rows_per_part != stored.rows_per_part:
            raise CapcacheError(f"{cache.name} is being written in parts of {stored.rows_per_part} rows; re-run with "
                                f"--part-rows {stored.rows_per_part} (or without it), or delete {record.parent} to "
                                "start over")
        return stored
    partition = cut(holders, rows_per_part or default_rows_per_part(n_rows, world))
    atomic_write_json(record, asdict(partition))
    return partition


def recorded_partition(cache: Path) -> Partition | None:
    """The partition recorded when ``cache``'s parts were first started; None when there is none."""
    record = _record(cache)
    if not record.is_file():
        return None
    try:
        return Partition(**read_json(record))
    except (OSError, ValueError, TypeError) as e:
        raise CapcacheError(f"{record} is damaged ({e}); delete {record.parent} and extract again") from e


def _record(cache: Path) -> Path:
    return parts_folder(cache) / "partition.json"
