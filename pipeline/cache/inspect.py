"""What caches exist and whether they can be trusted: `capcache cache ls | info | verify`.

Everything is read from the file itself (attributes, status column, per-row checksums and image
digests) plus the sidecar report the extraction writes beside it, so a cache copied to another
machine still describes itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from tqdm.auto import tqdm

from pipeline.cache import hdf5
from pipeline.cache.compute import describe, stored_compute
from pipeline.cache.contents import changed_content
from pipeline.cache.key import CacheSpec
from pipeline.cache.lock import holder
from pipeline.cache.parts import ATTR_PARTS, missing_parts, stored_bytes
from pipeline.cache.sidecar import read_sidecar
from pipeline.cache.writer import reopen_rows
from pipeline.data.image_source import source_at
from pipeline.errors import CapcacheError
from pipeline.io import temporaries


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
    compute: dict = field(default_factory=dict)  # how the features were computed: device, precision, batch size
    parts: int = 0  # part files a joined cache is made of (``parts``); 0 for one file
    missing_parts: list[str] = field(default_factory=list)  # those of them not on disk

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
            *([f"view:        {json.dumps(enc['view'], sort_keys=True)} (an augmented view; train on the clean "
               "cache with data.views)"] if enc.get("view") else []),
            f"manifest:    {self.manifest}",
            f"features:    {self.n_images} x {self.shape[0]} x {self.shape[1]} {self.dtype}"
            + (f", pooled {self.pooled_dim}" if self.pooled_dim else ""),
            f"rows:        {self.n_done} done, {self.n_bad} bad, {self.n_pending} pending"
            + (" (complete)" if self.complete else " (incomplete: run the same extract again to finish)"),
            f"size:        {self.size_bytes / 2**20:.1f} MiB" + (f" in {self.parts} parts" if self.parts else ""),
            f"computed on: {describe(self.compute)}",
            f"built with:  {', '.join(f'{k} {v}' for k, v in sorted(self.versions.items()))}",
        ]
        if self.missing_parts:
            lines.append(f"missing:     {len(self.missing_parts)} part files ({', '.join(self.missing_parts[:3])}"
                         + (" ..." if len(self.missing_parts) > 3 else "") + "); their rows read as pending: run the "
                         "same extract again to redo them")
        return "\n".join(lines)


@dataclass
class VerifyResult:
    path: Path
    rows_checked: int
    pending: list[str]  # image ids never written
    bad: list[str]  # image ids whose file could not be decoded at extraction
    non_finite: list[str]  # image ids whose stored features hold NaN or inf
    corrupt: list[str] = field(default_factory=list)  # rows whose bytes fail their checksum, as "row N (id)"
    changed: list[str] = field(default_factory=list)  # with deep=True: image ids whose file content changed
    repaired: bool = False  # the corrupt and changed rows were marked pending

    @property
    def ok(self) -> bool:
        return not self.pending and not self.non_finite and not self.corrupt and not self.changed

    def summary(self) -> str:
        verdict = "OK" if self.ok else "PROBLEMS"
        lines = [f"{verdict}: {self.rows_checked} written rows checked in {self.path.name}; "
                 f"{len(self.pending)} pending, {len(self.non_finite)} non-finite, {len(self.corrupt)} failing their "
                 f"checksum, {len(self.changed)} changed images, {len(self.bad)} bad images skipped"]
        for label, ids in (("pending", self.pending), ("non-finite", self.non_finite), ("checksum", self.corrupt),
                           ("changed", self.changed), ("bad", self.bad)):
            if ids:
                lines.append(f"  {label}: {', '.join(ids[:5])}" + (f" ... ({len(ids)} in all)" if len(ids) > 5 else ""))
        if self.repaired:
            lines.append("  those rows are marked pending: run the same extract command again to redo them")
        elif self.corrupt or self.changed:
            lines.append(f"  run `capcache cache verify {self.path} --repair`, then the same extract command, "
                         "to redo those rows")
        elif self.non_finite:
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
        dtype=str(features.dtype), size_bytes=stored_bytes(path),
        versions=json.loads(f.attrs[hdf5.ATTR_VERSIONS]), spec=spec,
        compute=stored_compute(f.attrs),
        parts=len(json.loads(f.attrs.get(ATTR_PARTS, "[]"))), missing_parts=missing_parts(f, path))
    if CacheSpec.from_dict(spec).key != info.key:
        raise CapcacheError(f"{path} has a key that does not match its own settings (edited or damaged); extract again")
    return info


def list_caches(cache_dir: str | Path) -> tuple[list[CacheInfo], list[str]]:
    """(readable caches, one labelled line per file that is not) in ``cache_dir``, by name: unreadable,
    being written by a live process, or a temporary left behind by a killed one."""
    folder = Path(cache_dir)
    if not folder.is_dir():
        raise CapcacheError(f"cache folder {folder} does not exist; pass --cache-dir or run `capcache extract` first")
    caches, problems = [], []
    for path in sorted(folder.glob("*.h5")):
        try:
            caches.append(cache_info(path))
        except CapcacheError as e:
            who = holder(path)
            problems.append(f"being written by PID {who[0]} ({who[1]}): {path.name}" if who else f"unreadable: {e}")
    for tmp in temporaries(folder):
        size = tmp.path.stat().st_size / 2**20 if tmp.path.exists() else 0.0
        problems.append(f"being written by PID {tmp.pid}: {tmp.path.name} ({size:.1f} MiB)" if tmp.owner_alive else
                        f"leftover of a killed run (PID {tmp.pid}): {tmp.path.name} ({size:.1f} MiB); "
                        "the next extract into this folder removes it")
    return caches, problems


def format_listing(caches: list[CacheInfo]) -> str:
    header = f"{'cache':<56} {'encoder':<18} {'images':>7} {'done':>7} {'bad':>4} {'size MiB':>9}  state"
    rows = [f"{c.path.name:<56} {c.encoder:<18} {c.n_images:>7} {c.n_done:>7} {c.n_bad:>4} "
            f"{c.size_bytes / 2**20:>9.1f}  {'complete' if c.complete else 'incomplete'}" for c in caches]
    return "\n".join([header, *rows]) if rows else "no caches"


def verify_cache(path: str | Path, block_rows: int = 256, progress: bool = True, deep: bool = False,
                 images: str | Path | None = None, repair: bool = False) -> VerifyResult:
    """Check every written row is finite and matches its checksum, reading ``block_rows`` rows at a
    time (bounded memory). ``deep`` also hashes every image file again (in ``images``, by default the
    folder it was extracted from; an img2dataset tar is read once for all its images) and names
    those whose content changed; ``repair`` marks the rows
    that failed either check pending, so that the same extract command redoes them."""
    path = Path(path)
    with _open(path) as f:
        _info(f, path)  # readable, with a consistent key
        ids = hdf5.read_image_ids(f)
        status = f[hdf5.STATUS][:]
        done = np.flatnonzero(status == hdf5.DONE)
        non_finite, corrupt = _scan(f, status, block_rows, progress)
        changed = _changed_images(f, path, done, images) if deep else np.empty(0, dtype=np.int64)
    if repair and (len(corrupt) or len(changed)):
        reopen_rows(path, np.union1d(corrupt, changed))
    return VerifyResult(path, len(done), [ids[r] for r in np.flatnonzero(status == hdf5.PENDING)],
                        [ids[r] for r in np.flatnonzero(status == hdf5.BAD)], [ids[r] for r in non_finite],
                        [f"row {r} ({ids[r]})" for r in corrupt], [ids[r] for r in changed],
                        repaired=bool(repair and (len(corrupt) or len(changed))))


def _scan(f: h5py.File, status: np.ndarray, block_rows: int, progress: bool) -> tuple[list[int], list[int]]:
    """(non-finite rows, rows failing their checksum) among the DONE rows of ``f``."""
    checksums = f[hdf5.CHECKSUMS][:] if hdf5.CHECKSUMS in f else None
    non_finite: list[int] = []
    corrupt: list[int] = []
    for start in tqdm(range(0, len(status), block_rows), desc="verify", unit="block", disable=not progress):
        block = slice(start, min(start + block_rows, len(status)))
        features = f[hdf5.FEATURES][block]  # [b, L, D]
        pooled = f[hdf5.POOLED][block] if hdf5.POOLED in f else None  # [b, E]
        finite = np.isfinite(features.reshape(len(features), -1)).all(axis=1)
        if pooled is not None:
            finite &= np.isfinite(pooled).all(axis=1)
        intact = hdf5.row_checksums(features, pooled) == checksums[block] if checksums is not None \
            else np.ones_like(finite)
        written = status[block] == hdf5.DONE
        rows = np.arange(block.start, block.stop)
        non_finite += rows[written & ~finite].tolist()
        corrupt += rows[written & ~intact].tolist()
    return non_finite, corrupt


def _changed_images(f: h5py.File, path: Path, done: np.ndarray, images: str | Path | None) -> np.ndarray:
    root = Path(images) if images is not None else Path(str(f.attrs.get(hdf5.ATTR_IMAGE_ROOT, "")))
    if not root.is_dir():
        raise CapcacheError(f"image folder {root} of {path.name} not found; pass --images with the folder it was "
                            "extracted from")
    sources = [source_at(root, name) for name in hdf5.read_strings(f, hdf5.FILES)]  # a shard's rows: its tar, read once
    return changed_content(sources, [d.decode() for d in f[hdf5.DIGESTS][:]], done)


def _open(path: Path) -> h5py.File:
    if not path.is_file():
        raise CapcacheError(f"cache {path} not found; `capcache cache ls` lists the caches in a folder")
    f = hdf5.open_for_reading(path)
    missing = [name for name in (hdf5.FEATURES, hdf5.STATUS, hdf5.IMAGE_IDS) if name not in f]
    if missing:
        f.close()
        raise hdf5.damaged(path, f"no {missing[0]} dataset")
    return f
