"""img2dataset's output: the images it downloaded, in shards, each with its caption and URL.

Each image that downloaded is a sample of three members (``shards``): ``<key>.jpg``, ``<key>.txt``
(the caption) and ``<key>.json`` (url, caption, key, status, width, height, ...). The key is
img2dataset's row number (shard × 10,000 + index in the shard, 9 digits), so with ``id_prefix`` it
gives the same ids as ``capcache import conceptual-captions`` of the TSV that was downloaded. A
record names its tar (``shard``, relative to the manifest's image_root) and the image's member
name (``file``), or, for shard folders, the image's file under image_root.

Rows that did not download are not in the shards at all: img2dataset counts them per shard in
``NNNNN_stats.json`` (successes, failed_to_download, failed_to_resize, and each error message),
which are summed per split into the summary and the manifest's source, as information: on the
web, a share of the images is always gone. The stats file is also img2dataset's mark that a
shard is finished (it redoes shards without one), so a shard without it is skipped, as is a tar
that is damaged or holds fewer images than its stats count; the other shards are still imported.

Ids stay unique without remembering them: every key of a shard starts with the shard's number
(checked), shard names are distinct within a split (checked), and splits other than train get
their prefix.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Iterator, Sequence

from pipeline.data.importers.intake import is_image_name
from pipeline.data.importers.reading import read_json_file
from pipeline.data.importers.shards import DamagedShard, is_tar, members, shard_name, shards_of, stats_path
from pipeline.data.importers.streamed import Problems, SplitInputs, Streamed, StreamedImporter, id_prefix
from pipeline.data.manifest import ImageRecord
from pipeline.errors import DataError

COUNTS = ("count", "successes", "failed_to_download", "failed_to_resize")
ERRORS_KEPT = 20  # most frequent error messages kept in the manifest's source
ERRORS_SHOWN = 3


@dataclass
class Downloads:
    """img2dataset's stats of one split's shards, summed."""

    shards: int = 0
    counts: Counter = field(default_factory=Counter)  # COUNTS -> rows
    errors: Counter = field(default_factory=Counter)  # error message -> rows

    def add(self, stats: dict) -> None:
        self.shards += 1
        self.counts.update({k: stats[k] for k in COUNTS})
        self.errors.update({message: n for message, n in stats["status_dict"].items() if message != "success"})

    def to_dict(self) -> dict:
        return {"shards": self.shards, **{k: self.counts[k] for k in COUNTS},
                "errors": dict(self.errors.most_common(ERRORS_KEPT))}

    def note(self, split: str) -> str:
        c = self.counts
        common = ", ".join(f"{message!r} {n:,}" for message, n in self.errors.most_common(ERRORS_SHOWN))
        return (f"{split}: img2dataset downloaded {c['successes']:,} of {c['count']:,} rows in {self.shards:,} "
                f"shards; {c['failed_to_download']:,} failed to download, {c['failed_to_resize']:,} failed to resize"
                + (f" (most often {common})" if common else ""))


def read_img2dataset(inputs: SplitInputs, problems: Problems) -> Streamed:
    shards = {split: _split_shards(split, paths) for split, paths in inputs.items()}
    root = Path(os.path.commonpath([s.parent for found in shards.values() for s in found]))
    stats = {s: _stats(s, problems) for found in shards.values() for s in found}
    downloads = {split: Downloads() for split in shards}
    for split, found in shards.items():
        for s in found:
            if stats[s] is not None:
                downloads[split].add(stats[s])
    source = {"format": "img2dataset",
              "inputs": {split: [os.path.abspath(p) for p in paths] for split, paths in inputs.items()},
              "downloads": {split: d.to_dict() for split, d in downloads.items()}}
    records = (r for split, found in shards.items() for s in found
               for r in _shard_records(s, split, root, stats[s], problems))
    return Streamed(str(root), source, records, [d.note(split) for split, d in downloads.items()])


def _split_shards(split: str, paths: Sequence[Path]) -> list[Path]:
    found = [s for p in paths for s in shards_of(Path(os.path.abspath(p)))]
    first: dict[str, Path] = {}
    for s in found:
        if shard_name(s) in first:
            raise DataError(f"the {split} split has shard {shard_name(s)} twice ({first[shard_name(s)]} and {s}), "
                            "whose keys would collide; give each split the output of one img2dataset run")
        first[shard_name(s)] = s
    return found


def _stats(shard: Path, problems: Problems) -> dict | None:
    path = stats_path(shard)
    if not path.is_file():
        problems.skip("unfinished_shard", shard, None, f"no {path.name} beside it, so img2dataset had not finished "
                                                       "this shard (running it again redoes it); shard skipped")
        return None
    try:
        stats = read_json_file(path)
        if all(isinstance(stats.get(k), int) for k in COUNTS) and isinstance(stats.get("status_dict"), dict):
            return stats
        why = f"expected the counts {', '.join(COUNTS)} and a status_dict"
    except DataError as e:
        why = str(e)
    problems.skip("bad_stats", path, None, f"not an img2dataset stats file ({why}); its shard is skipped")
    return None


def _shard_records(shard: Path, split: str, root: Path, stats: dict | None, problems: Problems) -> list[ImageRecord]:
    """The shard's records, sorted by key; none when it is skipped (read whole before any is kept)."""
    if stats is None:
        return []
    try:
        samples = [(key, list(group)) for key, group in groupby(members(shard), key=lambda m: _key(m[0]))]
    except DamagedShard as e:
        problems.skip("damaged_shard", shard, None, f"{e}; shard skipped")
        return []
    images = sum(any(is_image_name(name) for name, _ in group) for _, group in samples)
    if is_tar(shard) and images != stats["successes"]:
        problems.skip("damaged_shard", shard, None, f"holds {images:,} images where its stats count "
                                                    f"{stats['successes']:,} downloaded (truncated?); shard skipped")
        return []
    rel = shard.relative_to(root).as_posix()
    records = _records(samples, shard, rel, split, problems)
    return sorted(records, key=lambda r: r.key)


def _key(name: str) -> str:
    """webdataset's grouping: a member belongs to the sample named by its base name up to the first dot."""
    directory, _, base = name.rpartition("/")
    return f"{directory}/{base.split('.', 1)[0]}" if directory else base.split(".", 1)[0]


def _records(samples: list[tuple[str, list[tuple[str, bytes | None]]]], shard: Path, rel: str, split: str,
             problems: Problems) -> Iterator[ImageRecord]:
    seen: set[str] = set()  # one shard's keys (at most its 10,000 rows)
    prefix = shard_name(shard)
    for key, group in samples:
        parts = {name.removeprefix(key): (name, data) for name, data in group}
        image = next((name for name, _ in group if is_image_name(name)), None)
        where = f"sample {key}"
        if image is None:
            problems.skip("bad_sample", shard, where, "has no image member; skipped")
        elif not key.startswith(prefix) or key in seen:
            why = "again" if key in seen else f"does not start with the shard's number {prefix}"
            problems.skip("bad_sample", shard, where, f"key {why}: not an img2dataset sample of this shard; skipped")
        elif (meta := _metadata(parts.get(".json"), shard, where, problems)) is not None:
            seen.add(key)
            caption = _caption(parts.get(".txt"), meta)
            if not caption:
                problems.skip("empty_caption", shard, where, "has no caption; skipped")
                continue
            url = meta.get("url") if isinstance(meta.get("url"), str) else None
            if is_tar(shard):
                yield ImageRecord(id_prefix(split) + key, image, split, [caption], url=url, shard=rel, key=key)
            else:
                yield ImageRecord(id_prefix(split) + key, f"{rel}/{image}", split, [caption], url=url, key=key)


def _metadata(member: tuple[str, bytes | None] | None, shard: Path, where: str, problems: Problems) -> dict | None:
    """The sample's .json as a dict ({} without one); None, reported, when it cannot be read."""
    if member is None:
        return {}
    try:
        meta = json.loads(member[1] or b"")
        if isinstance(meta, dict):
            return meta
    except ValueError:
        pass
    problems.skip("bad_sample", shard, where, f"{member[0]} is not a JSON object; skipped")
    return None


def _caption(member: tuple[str, bytes | None] | None, meta: dict) -> str:
    """The .txt member's caption (img2dataset writes one whenever it has a caption column), else the metadata's."""
    if member is not None:
        return (member[1] or b"").decode("utf-8", errors="replace").strip()
    caption = meta.get("caption")
    return caption.strip() if isinstance(caption, str) else ""


import_img2dataset = StreamedImporter(read_img2dataset)
