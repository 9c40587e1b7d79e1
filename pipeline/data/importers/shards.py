"""img2dataset's shards: finding them in an output folder, and reading one's members in place.

img2dataset writes a URL list in shards of (by default) 10,000 rows. With ``--output_format
webdataset`` shard N is ``NNNNN.tar``; with ``--output_format files`` it is a folder ``NNNNN/``
holding the same members (which is also what unpacking the tar into a folder of its name gives).
Either way ``NNNNN_stats.json`` appears beside it once img2dataset has finished the shard.

Members are read where they are, never extracted: the names of the images, and the bytes of the
small ``.txt`` (caption) and ``.json`` (metadata) members. A tar is opened for random access, so
reading it costs its headers, not its gigabytes of JPEG. A tar that cannot be read whole raises
``DamagedShard``, for the importer to report and skip while the other shards are still imported.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Iterator

from pipeline.errors import DataError

TAR = ".tar"
SMALL = (".txt", ".json")  # members whose bytes are read; images are only named


class DamagedShard(Exception):
    """A shard that cannot be read whole (truncated, corrupt); the message says what was wrong."""


def shards_of(path: Path) -> list[Path]:
    """The shards an input names: itself for a ``.tar``, else every shard of an output folder, in order."""
    if path.is_file() and path.suffix == TAR:
        return [path]
    if path.is_dir():
        found = sorted(path.glob(f"*{TAR}")) or sorted(p for p in path.iterdir() if p.is_dir() and p.name.isdigit())
        if found:
            return found
        raise DataError("no img2dataset shards here (NNNNN.tar files or NNNNN/ folders); is this img2dataset's "
                        "--output_folder?", path)
    if not path.exists():
        raise DataError("not found", path)
    raise DataError("not an img2dataset shard (.tar) or output folder", path)


def shard_name(shard: Path) -> str:
    """``00000`` for ``00000.tar`` and for the folder ``00000``: the number every key of the shard starts with."""
    return shard.name.removesuffix(TAR)


def stats_path(shard: Path) -> Path:
    return shard.parent / f"{shard_name(shard)}_stats.json"


def is_tar(shard: Path) -> bool:
    return shard.suffix == TAR


def members(shard: Path) -> Iterator[tuple[str, bytes | None]]:
    """(name, bytes) of each member in stored order; the bytes only for captions and metadata."""
    return _tar_members(shard) if is_tar(shard) else _folder_members(shard)


def _tar_members(path: Path) -> Iterator[tuple[str, bytes | None]]:
    try:
        size = path.stat().st_size
        with tarfile.open(path, "r:") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                if info.offset_data + info.size > size:  # random access seeks past a cut-off member silently
                    raise DamagedShard(f"truncated: member {info.name} ends past the end of the file")
                yield info.name, tar.extractfile(info).read() if info.name.endswith(SMALL) else None
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DamagedShard(f"not a readable tar ({e})") from e


def _folder_members(path: Path) -> Iterator[tuple[str, bytes | None]]:
    try:
        entries = sorted((e for e in os.scandir(path) if e.is_file()), key=lambda e: e.name)
        for entry in entries:
            yield entry.name, Path(entry.path).read_bytes() if entry.name.endswith(SMALL) else None
    except OSError as e:
        raise DamagedShard(f"cannot read the folder ({e.strerror})") from e
