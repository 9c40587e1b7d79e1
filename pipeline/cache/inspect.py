"""What caches exist and whether they can be trusted: `capcache cache ls | info | verify`.

Everything is read from the file itself (attributes, status column) plus the sidecar report the
extraction writes beside it, so a cache copied to another machine still describes itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from tqdm.auto import tqdm

from pipeline.cache import hdf5
from pipeline.cache.key import CacheSpec
from pipeline.cache.sidecar import read_sidecar
from pipeline.errors import CapcacheError


@dataclass
class CacheInfo:
    path: Path
    key: str
    encoder: str
    weights: str
    manifest: str  # from the sidecar report; "?" when it is missing
    n_images: int
    n_done: int
    n_bad: int
    shape: tuple[int, int]  # (L, D) per image
    pooled_dim: int | None
    dtype: str
    size_bytes: int
    versions: dict = field(default_factory=dict)
    spec: dict = field(default_factory=dict)

    @property
    def n_pending(self) -> int:
        return self.n_images - self.n_done - self.n_bad

    @property
    def complete(self) -> bool:
        return self.n_pending == 0

    def summary(self) -> str:
        enc = self.spec.get("encoder", {})
        lines = [
            f"path:        {self.path}",
            f"key:         {self.key}",
            f"encoder:     {self.encoder} (weights {self.weights}, grid {enc.get('grid')})",
            f"preprocess:  {json.dumps(enc.get('preprocessing', {}), sort_keys=True)}",
            f"manifest:    {self.manifest}",
            f"features:    {self.n_images} x {self.shape[0]} x {self.shape[1]} {self.dtype}"
            + (f", pooled {self.pooled_dim}" if self.pooled_dim else ""),
            f"rows:        {self.n_done} done, {self.n_bad} bad, {self.n_pending} pending"
            + (" (complete)" if self.complete else " (incomplete: run the same extract again to finish)"),
            f"size:        {self.size_bytes / 2**20:.1f} MiB",
            f"built with:  {', '.join(f'{k} {v}' for k, v in sorted(self.versions.items()))}",
        ]
        return "\n".join(lines)


@dataclass
class VerifyResult:
    path: Path
    rows_checked: int
    pending: list[str]  # image ids never written
    bad: list[str]  # image ids whose file could not be decoded at extraction
    non_finite: list[str]  # image ids whose stored features hold NaN or inf

    @property
    def ok(self) -> bool:
        return not self.pending and not self.non_finite

    def summary(self) -> str:
        verdict = "OK" if self.ok else "PROBLEMS"
        lines = [f"{verdict}: {self.rows_checked} written rows checked in {self.path.name}; "
                 f"{len(self.pending)} pending, {len(self.non_finite)} non-finite, {len(self.bad)} bad images skipped"]
        for label, ids in (("pending", self.pending), ("non-finite", self.non_finite), ("bad", self.bad)):
            if ids:
                lines.append(f"  {label}: {', '.join(ids[:5])}" + (f" ... ({len(ids)} in all)" if len(ids) > 5 else ""))
        if self.non_finite:
            lines.append("  delete the cache and extract again (non-finite features mean a broken run or weights)")
        elif self.pending:
            lines.append("  run the same extract command again to finish it")
        return "\n".join(lines)


def cache_info(path: str | Path) -> CacheInfo:
    path = Path(path)
    with _open(path) as f:
        return _info(f, path)


def _info(f: h5py.File, path: Path) -> CacheInfo:
    """What the open cache ``f`` holds; an error when its key does not match its own settings."""
    spec = json.loads(f.attrs[hdf5.ATTR_SPEC])
    status = f[hdf5.STATUS][:]
    features = f[hdf5.FEATURES]
    info = CacheInfo(
        path=path, key=str(f.attrs[hdf5.ATTR_KEY]), encoder=spec["encoder"]["encoder"],
        weights=str(spec["encoder"]["weights"]), manifest=read_sidecar(path).get("manifest", "?"),
        n_images=len(status), n_done=int((status == hdf5.DONE).sum()), n_bad=int((status == hdf5.BAD).sum()),
        shape=tuple(features.shape[1:]), pooled_dim=f[hdf5.POOLED].shape[1] if hdf5.POOLED in f else None,
        dtype=str(features.dtype), size_bytes=path.stat().st_size,
        versions=json.loads(f.attrs[hdf5.ATTR_VERSIONS]), spec=spec)
    if CacheSpec.from_dict(spec).key != info.key:
        raise CapcacheError(f"{path} has a key that does not match its own settings (edited or damaged); extract again")
    return info


def list_caches(cache_dir: str | Path) -> tuple[list[CacheInfo], list[str]]:
    """(readable caches, one line per file that is not) in ``cache_dir``, by name."""
    folder = Path(cache_dir)
    if not folder.is_dir():
        raise CapcacheError(f"cache folder {folder} does not exist; pass --cache-dir or run `capcache extract` first")
    caches, problems = [], []
    for path in sorted(folder.glob("*.h5")):
        try:
            caches.append(cache_info(path))
        except CapcacheError as e:
            problems.append(str(e))
    return caches, problems


def format_listing(caches: list[CacheInfo]) -> str:
    header = f"{'cache':<56} {'encoder':<18} {'images':>7} {'done':>7} {'bad':>4} {'size MiB':>9}  state"
    rows = [f"{c.path.name:<56} {c.encoder:<18} {c.n_images:>7} {c.n_done:>7} {c.n_bad:>4} "
            f"{c.size_bytes / 2**20:>9.1f}  {'complete' if c.complete else 'incomplete'}" for c in caches]
    return "\n".join([header, *rows]) if rows else "no caches"


def verify_cache(path: str | Path, block_rows: int = 256, progress: bool = True) -> VerifyResult:
    """Check every row is written and finite, reading ``block_rows`` rows at a time (bounded memory)."""
    path = Path(path)
    with _open(path) as f:
        _info(f, path)  # readable, with a consistent key
        ids = hdf5.read_image_ids(f)
        status = f[hdf5.STATUS][:]
        datasets = [f[hdf5.FEATURES]] + ([f[hdf5.POOLED]] if hdf5.POOLED in f else [])
        non_finite: list[int] = []
        done = np.flatnonzero(status == hdf5.DONE)
        for start in tqdm(range(0, len(status), block_rows), desc="verify", unit="block", disable=not progress):
            block = slice(start, min(start + block_rows, len(status)))
            finite = np.ones(block.stop - block.start, dtype=bool)
            for data in datasets:
                values = data[block]  # [b, L, D] or [b, E]
                finite &= np.isfinite(values.reshape(len(values), -1)).all(axis=1)
            rows = np.arange(block.start, block.stop)
            non_finite += [int(r) for r in rows[~finite] if status[r] == hdf5.DONE]
    return VerifyResult(path, len(done), [ids[r] for r in np.flatnonzero(status == hdf5.PENDING)],
                        [ids[r] for r in np.flatnonzero(status == hdf5.BAD)], [ids[r] for r in non_finite])


def _open(path: Path) -> h5py.File:
    if not path.is_file():
        raise CapcacheError(f"cache {path} not found; `capcache cache ls` lists the caches in a folder")
    f = hdf5.open_for_reading(path)
    missing = [name for name in (hdf5.FEATURES, hdf5.STATUS, hdf5.IMAGE_IDS) if name not in f]
    if missing:
        f.close()
        raise hdf5.damaged(path, f"no {missing[0]} dataset")
    return f
