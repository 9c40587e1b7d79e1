"""Saying so when a new cache is started beside one of the same settings over other images.

Adding one image to a manifest changes its image set, so the next extraction starts a new cache;
without a word the old one would stay on disk, as large as the new. The note names it so the
user can delete it once the new cache is complete.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.cache import hdf5
from pipeline.cache.key import CacheSpec
from pipeline.errors import CapcacheError

_IMAGES = ("image_set", "image_names", "n_images")


def sibling_note(path: Path, spec: CacheSpec) -> str | None:
    """A line naming the caches in ``path``'s folder built with ``spec``'s settings over other images."""
    found = []
    for other in sorted(Path(path).parent.glob(f"{spec.encoder['encoder']}-*.h5")):
        if other == path:
            continue
        try:
            with hdf5.open_for_reading(other) as f:
                stored = json.loads(f.attrs[hdf5.ATTR_SPEC])
        except (CapcacheError, OSError, KeyError, ValueError):
            continue
        if _settings(stored) == _settings(spec.to_dict()):
            found.append(f"{other.name} ({stored['n_images']} images)")
    if not found:
        return None
    return (f"the image set differs from that of {', '.join(found)} (same settings), so a new cache is extracted "
            "in full; delete the old one once you no longer need it")


def _settings(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in _IMAGES}
