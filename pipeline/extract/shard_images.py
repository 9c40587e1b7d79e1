"""Decoding the images inside img2dataset tars in DataLoader workers, streamed, never unpacked.

The rows to do are grouped by tar; each worker takes whole tars (webdataset's ``split_by_worker``),
so a tar is opened by one worker and read once, front to back, for the rows it holds. Only tars
with rows to do are opened. Items are those of image files (``images.hashed_item``): a row's
stats are its tar's (size, mtime_ns) and its digest that of the member's bytes. A member that
cannot be decoded, a member the tar lacks and a tar that cannot be read (or is cut short) are
items with their reason, for the loop to mark BAD like a bad file. Items come in the tar's order,
not row order: the loop sorts each batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from torch.utils.data import IterableDataset

from pipeline.cache.contents import file_stats
from pipeline.data.image_source import ImageSource, members_by_tar
from pipeline.data.shard_stream import UnreadableShard, missing_member, read_members
from pipeline.digests import bytes_digest
from pipeline.extract.images import Item, failed_item, hashed_item
from pipeline.optional import require


class ShardImages(IterableDataset):
    """Items (row, image [3, S, S], error or "", digest, size, mtime_ns) of ``rows``, all inside tars."""

    def __init__(self, sources: Sequence[ImageSource], rows: np.ndarray, transform: Callable, crop: int):
        require("webdataset")  # here, not in a worker: a missing package is one line saying how to install it
        self.shards = members_by_tar(sources, rows)  # tar -> {member: row}
        self.transform = transform
        self.crop = crop

    def __iter__(self) -> Iterator[Item]:
        for shard in require("webdataset").shardlists.split_by_worker(list(self.shards)):  # whole tars per worker
            yield from self._shard_items(shard, self.shards[shard])

    def _shard_items(self, shard: Path, members: dict[str, int]) -> Iterator[Item]:
        stats = tuple(int(s) for s in file_stats([shard])[0])  # the tar's (size, mtime_ns), for each of its rows
        left = dict(members)
        error: Exception | None = None
        try:
            for name, data in read_members(shard, members):
                yield hashed_item(left.pop(name), lambda: (data, bytes_digest(data), stats), self.transform,
                                  self.crop, stats)
        except UnreadableShard as e:
            error = e
        for name, row in left.items():
            yield failed_item(row, error or missing_member(shard, name), self.crop, stats=stats)
