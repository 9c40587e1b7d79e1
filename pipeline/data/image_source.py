"""Where an image's bytes are: a file of its own, or a member of an img2dataset tar.

Extraction stats and opens *the file that holds the image*: the image file itself, or for a record
inside a shard (``ImageRecord.shard``) its tar, whose size and mtime stand for each of its images
(one ``stat``, the tar is never read for it). A cache records each row's image under
``stored_name``, relative to the image folder; a shard's row is ``<shard>/<member>``
(``00000.tar/000000001.jpg``), so ``source_at`` finds the tar again from the cache alone
(``cache verify --deep``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable, NamedTuple, Sequence

if TYPE_CHECKING:
    from pipeline.data.manifest import ImageRecord

TAR = ".tar"


class ImageSource(NamedTuple):
    file: Path  # the file holding the image: what is stat'ed and opened
    member: str | None = None  # the image's member name when ``file`` is an img2dataset tar

    @property
    def in_shard(self) -> bool:
        return self.member is not None


def source_of(root: Path, rec: ImageRecord) -> ImageSource:
    return ImageSource(root / holding_name(rec), rec.file if rec.shard is not None else None)


def holding_name(rec: ImageRecord) -> str:
    """The file that holds the image, relative to the image folder: its own, or its shard's tar."""
    return rec.shard if rec.shard is not None else rec.file


def members_by_tar(sources: Sequence[ImageSource], rows: Iterable[int]) -> dict[Path, dict[str, int]]:
    """{tar: {member: row}} of those ``rows`` inside tars, the tars in order of their first row:
    what reading each tar once for all its rows needs."""
    by_tar: dict[Path, dict[str, int]] = {}
    for row in rows:
        source = sources[row]
        if source.in_shard:
            by_tar.setdefault(source.file, {})[source.member] = int(row)
    return by_tar


def stored_name(rec: ImageRecord) -> str:
    """The image relative to the image folder, as a cache records it: through its tar for a shard's row."""
    return f"{rec.shard}/{rec.file}" if rec.shard is not None else rec.file


def source_at(root: Path, name: str) -> ImageSource:
    """The source of a ``stored_name``: a tar's member when a folder of the name is a ``.tar`` file."""
    parts = name.split("/")
    for i, part in enumerate(parts[:-1]):
        if part.endswith(TAR) and not (root.joinpath(*parts[:i + 1])).is_dir():
            return ImageSource(root.joinpath(*parts[:i + 1]), "/".join(parts[i + 1:]))
    return ImageSource(root / name)
