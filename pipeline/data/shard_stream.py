"""Streaming chosen images out of an img2dataset tar with webdataset, never unpacking it.

A tar is read once, front to back (webdataset's ``tar_file_iterator`` over a stream: what it
does for any shard, local or remote); only the members asked for are read into memory, the others
are passed over, and reading stops once every member asked for has been seen. Extraction decodes
what this yields, and the change check hashes it, so a shard costs one pass however many of its
images are asked for.

A tar that stops early is not an error to ``tarfile``'s stream mode: it just ends. So when
members are left over, ``missing_member`` tells a member the tar does not have from one it would
have had past the point where the file was cut (a whole tar ends with two zero blocks).
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Collection, Iterator

from pipeline.optional import require

BLOCK = 512  # a tar is made of 512-byte blocks and ends with two zero ones


class UnreadableShard(Exception):
    """The shard cannot be read (missing, not a tar, cut short); the message names it and why."""


class MissingMember(Exception):
    """The manifest names a member the shard does not hold."""


def read_members(shard: Path, names: Collection[str]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of the members of ``shard`` among ``names``, in the tar's order; stops once all
    are found. Raises ``UnreadableShard`` when the tar cannot be read; names it lacks are not yielded."""
    webdataset = require("webdataset")
    left = set(names)
    if not left:
        return
    try:
        with open(shard, "rb") as stream:
            for member in webdataset.tariterators.tar_file_iterator(stream, select_files=left.__contains__):
                left.discard(member["fname"])
                yield member["fname"], member["data"]
                if not left:
                    return
    except (tarfile.TarError, OSError, EOFError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e.args[0] if e.args else e).split(" @ ")[0]
        raise UnreadableShard(f"{shard} is not a readable tar ({why})") from e


def missing_member(shard: Path, name: str) -> Exception:
    """Why ``name`` was not found in ``shard``: cut short before it, or not there at all."""
    if not _ends_whole(shard):
        return UnreadableShard(f"{shard} is cut short (it does not end as a tar ends), so {name} cannot be read; "
                               "download the shard again")
    return MissingMember(f"{shard} has no member {name}; import the shard again")


def _ends_whole(shard: Path) -> bool:
    try:
        with open(shard, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size % BLOCK or size < 2 * BLOCK:
                return False
            f.seek(size - 2 * BLOCK)
            return f.read(2 * BLOCK) == bytes(2 * BLOCK)
    except OSError:
        return False
