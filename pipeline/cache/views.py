"""Finding the augmented views that belong to a clean cache (``extract --views K``; ``pipeline.augmentation``).

A view's cache is an ordinary cache whose spec is the clean cache's plus ``encoder.view``: the
same encoder, weights, dtype and image set. Training names only the clean cache and the number of
views it wants, and finds them beside it by spec, not by file name. Views of a cache whose images
changed since have another image set and are not found (extract them again), so stale views are
never mixed with fresh features.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

from pipeline.cache import hdf5
from pipeline.cache.key import CacheSpec
from pipeline.errors import CapcacheError


def view_caches(clean: Path, spec: CacheSpec, views: int) -> list[Path]:
    """Paths of views 1..``views`` of the clean cache at ``clean`` (``spec``), found in its folder.

    All from one set of augmentation settings; several complete sets, or none, is an error that
    says what to do."""
    sets: dict[str, dict[int, Path]] = {}  # augmentation settings (JSON) -> {view index: path}
    for other in sorted(clean.parent.glob(f"{glob.escape(spec.encoder['encoder'])}-*view*.h5")):
        view = _view_of(other, spec)
        if view is not None:
            settings = json.dumps({k: v for k, v in view.items() if k != "index"}, sort_keys=True)
            sets.setdefault(settings, {})[view["index"]] = other
    complete = {s: found for s, found in sets.items() if all(k in found for k in range(1, views + 1))}
    if len(complete) > 1:
        raise CapcacheError(f"{clean.parent} holds {len(complete)} sets of {views} views of {clean.name}, made with "
                            "different augmentation settings; move the set you do not want to another folder")
    if not complete:
        have = sorted({k for found in sets.values() for k in found})
        raise CapcacheError(f"data.views={views} needs views 1..{views} of {clean.name} beside it, but {clean.parent} "
                            + (f"holds only views {', '.join(map(str, have))}" if have else "holds none")
                            + f"; run the cache's extract command again with --views {views}")
    found = next(iter(complete.values()))
    return [found[k] for k in range(1, views + 1)]


def _view_of(path: Path, clean: CacheSpec) -> dict | None:
    """The ``view`` entry of the cache at ``path`` when it is a view of the clean cache ``clean``; else None."""
    try:
        with hdf5.open_for_reading(path) as f:
            stored = json.loads(f.attrs[hdf5.ATTR_SPEC])
    except (CapcacheError, OSError, KeyError, ValueError):
        return None
    view = stored.get("encoder", {}).get("view")
    encoder = {k: v for k, v in stored.get("encoder", {}).items() if k != "view"}
    return view if view and {**stored, "encoder": encoder} == clean.to_dict() else None
