"""Caches of the same settings over other images: extend from them instead of starting over.

Adding one image to a manifest changes its image set, so the next extraction writes a new cache.
Rather than encoding everything again, the new cache first copies every row an older sibling
(same encoder, weights, grid, dtype, library versions, and features computed on the same kind of
device at the same batch size) already holds for the same image and file; only the images it
lacks are encoded. The note names the sibling so the user can delete it once the new cache is
complete.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.cache import hdf5
from pipeline.cache.compute import agree, stored_compute
from pipeline.cache.key import CacheSpec
from pipeline.cache.writer import CacheWriter
from pipeline.errors import CapcacheError

_IMAGES = ("image_set", "image_names", "n_images")


def extend_from_siblings(writer: CacheWriter, found: list[Path], created: bool) -> str | None:
    """Copy into ``writer``'s pending rows what its siblings ``found`` (``siblings``) hold; a line
    saying what was done, if anything.

    ``created``: the cache file is new in this run (then a sibling is worth a note even when none of
    its rows applies)."""
    if not len(writer.rows_to_do()):
        return None
    copied = {other: writer.copy_rows_from(other) for other in found}
    used = {other: n for other, n in copied.items() if n}
    if used:
        return (f"the image set differs from that of {_listed(found)} (same settings): copied "
                + ", ".join(f"{n} rows from {other.name}" for other, n in used.items())
                + ", so only the other images are extracted; delete the old cache once you no longer need it")
    if created and found:
        return (f"the image set differs from that of {_listed(found)} (same settings) and none of its rows matches "
                "these images, so a new cache is extracted in full; delete the old one once you no longer need it")
    return None


def siblings(path: Path, spec: CacheSpec, compute: dict) -> list[Path]:
    """The complete-or-not caches in ``path``'s folder built with ``spec``'s settings over other images,
    their features computed as ``compute`` says (``pipeline.cache.compute.agree``: fp32 rows are
    never mixed with fp16 ones, nor rows of one batch size with another's)."""
    found = []
    for other in sorted(Path(path).parent.glob(f"{spec.encoder['encoder']}-*.h5")):
        if other == path:
            continue
        try:
            with hdf5.open_for_reading(other) as f:
                stored = json.loads(f.attrs[hdf5.ATTR_SPEC])
                computed = stored_compute(f.attrs)
        except (CapcacheError, OSError, KeyError, ValueError):
            continue
        if _settings(stored) == _settings(spec.to_dict()) and agree(computed, compute):
            found.append(other)
    return found


def _listed(paths: list[Path]) -> str:
    return ", ".join(p.name for p in paths)


def _settings(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in _IMAGES}
