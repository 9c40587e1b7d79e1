"""The extraction loop: manifest + encoder -> a complete, resumable cache file.

Batches are decoded by DataLoader workers, run through the frozen encoder under inference mode
(channels_last, fp16 autocast on CUDA), and written by a background thread. Re-running with the
same settings finds the complete cache and returns at once; after an interruption it continues
with the rows not yet written.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from pipeline.cache import hdf5
from pipeline.cache.key import CacheSpec, image_digests
from pipeline.cache.writer import CacheWriter
from pipeline.data.manifest import Manifest
from pipeline.device import resolve_device
from pipeline.distributed import Collective
from pipeline.encoders import build_encoder
from pipeline.encoders.base import FrozenEncoder
from pipeline.extract.background import BackgroundWriter
from pipeline.extract.images import ImageFiles
from pipeline.errors import CapcacheError
from pipeline.io import atomic_write_json, read_json


@dataclass
class ExtractResult:
    path: Path
    key: str
    n_images: int
    extracted: int  # rows written by this run
    bad: list[dict] = field(default_factory=list)  # {"image_id", "file", "error"}
    seconds: float = 0.0
    reused: bool = False
    main_process: bool = True  # False on the other ranks of a torchrun job (they print nothing)

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    @property
    def images_per_s(self) -> float:
        return self.extracted / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        if self.reused:
            return f"cache is complete and matches these settings (key {self.key}); nothing to do"
        lines = [f"images: {self.n_images}, extracted now: {self.extracted}, skipped as bad: {len(self.bad)}",
                 f"size on disk: {self.size_bytes / 2**20:.1f} MiB, speed: {self.images_per_s:.1f} images/s"]
        lines += [f"  bad: {b['file']}: {b['error']}" for b in self.bad[:10]]
        if len(self.bad) > 10:
            lines.append(f"  ... and {len(self.bad) - 10} more, listed in {self.path.with_suffix('.json')}")
        return "\n".join(lines)


def cache_spec(manifest: Manifest, encoder: FrozenEncoder, dtype: str) -> CacheSpec:
    image_set, image_names = image_digests(manifest)
    return CacheSpec(encoder=encoder.describe(), dtype=dtype, image_set=image_set, image_names=image_names,
                     n_images=len(manifest.images))


def cache_path_for(cache_dir: str | Path, manifest: Manifest, spec: CacheSpec) -> Path:
    return Path(cache_dir) / f"{spec.encoder['encoder']}-{manifest.name}-{spec.key}.h5"


def extract(manifest: Manifest, encoder: str, weights: str | None = None, grid: int | None = None,
            cache_dir: str | Path = "cache", batch_size: int = 32, workers: int = 2,
            device: str = "auto", dtype: str = "float16", progress: bool = True) -> ExtractResult:
    """Fill (or reuse) the cache of ``encoder`` over the manifest's images.

    Under ``torchrun`` every rank encodes its share of the remaining rows (rank r takes every
    world-th one) and rank 0, the only writer, stores them: one cache file, usable as a whole.
    """
    if dtype not in ("float16", "float32"):
        raise CapcacheError(f"dtype {dtype!r} is not supported; use float16 (half the size) or float32")
    comm = Collective.from_env()
    try:
        return _extract(comm, manifest, build_encoder(encoder, weights, grid), cache_dir, batch_size, workers,
                        device, dtype, progress)
    finally:
        comm.close()


def _extract(comm: Collective, manifest: Manifest, model: FrozenEncoder, cache_dir: str | Path, batch_size: int,
             workers: int, device: str, dtype: str, progress: bool) -> ExtractResult:
    spec = cache_spec(manifest, model, dtype)
    path = cache_path_for(cache_dir, manifest, spec)
    finished = comm.broadcast(_finished_report(path) if comm.is_main else None)
    if finished is not None:
        return ExtractResult(path, spec.key, spec.n_images, 0, finished.get("bad", []), reused=True,
                             main_process=comm.is_main)

    dev = comm.device(resolve_device(device))
    model = model.to(dev).to(memory_format=torch.channels_last)
    n_tokens, dim = _output_shape(model, dev)
    ids = [r.image_id for r in manifest.images]
    files = [manifest.image_path(r) for r in manifest.images]
    start = time.perf_counter()
    writer = CacheWriter(path, spec, ids, n_tokens, dim, model.pooled_dim) if comm.is_main else None
    try:
        todo = comm.broadcast(writer.rows_to_do() if writer else None)
        if writer and progress:
            size = hdf5.estimated_bytes(len(ids), n_tokens, dim, model.pooled_dim, dtype)
            tqdm.write(f"cache {path} ({len(ids)} images x {n_tokens} x {dim} {dtype}, {size / 2**30:.2f} GiB); "
                       f"{len(todo)} images to extract")
        mine = todo[comm.rank::comm.world]
        images = ImageFiles(files, mine, model.preprocessing.transform(), model.preprocessing.crop)
        loader = DataLoader(images, batch_size=batch_size, num_workers=workers, pin_memory=dev.type == "cuda")
        steps = math.ceil(math.ceil(len(todo) / comm.world) / batch_size)  # rank 0 holds the most rows
        bad_rows = _run(model, loader, steps, writer, comm, dev, np.dtype(dtype), len(todo), progress)
        status = writer.status_array() if writer else None
    finally:
        if writer:
            writer.close()
    result = None
    if comm.is_main:
        bad = [{"image_id": ids[r], "file": str(manifest.images[r].file), "error": err}
               for r, err in sorted(bad_rows.items())]
        result = ExtractResult(path, spec.key, spec.n_images, int(len(todo) - len(bad_rows)), bad,
                               seconds=time.perf_counter() - start)
        atomic_write_json(path.with_suffix(".json"), {
            "key": spec.key, "spec": spec.to_dict(), "manifest": manifest.name,
            "complete": bool(np.all(status != hdf5.PENDING)),
            "n_images": spec.n_images, "n_done": int((status == hdf5.DONE).sum()), "bad": bad,
            "processes": comm.world,
        })
    result = comm.broadcast(result)
    result.main_process = comm.is_main
    return result


def _finished_report(path: Path) -> dict | None:
    """The sidecar report of a complete cache at ``path``, or None when there is work to do."""
    report_path = path.with_suffix(".json")
    if path.exists() and report_path.exists():
        report = read_json(report_path)
        if report.get("complete"):
            return report
    return None


Part = tuple[np.ndarray, np.ndarray, "np.ndarray | None", dict]  # rows [b], features [b, L, D], pooled [b, E], bad


def _run(model: FrozenEncoder, loader: DataLoader, steps: int, writer: CacheWriter | None, comm: Collective,
         dev: torch.device, dtype: np.dtype, total: int, progress: bool) -> dict[int, str]:
    """Encode this rank's batches; rank 0 gathers every rank's batch per step and writes it.

    Every rank takes part in exactly ``steps`` gathers (an empty part once its rows run out), so
    ranks with fewer rows never leave the others waiting.
    """
    bad: dict[int, str] = {}
    background = BackgroundWriter(writer.write) if writer else None
    autocast = torch.autocast("cuda", dtype=torch.float16, enabled=dev.type == "cuda")
    batches = iter(loader)
    try:
        with torch.inference_mode(), autocast, tqdm(total=total, desc="extract", unit="img",
                                                    disable=not (progress and comm.is_main)) as bar:
            for _ in range(steps):
                batch = next(batches, None)  # (rows [B], images [B, 3, S, S], errors: B strings)
                parts = comm.gather(_encode(model, batch, dev, dtype) if batch is not None else None)
                for rows, feats, pooled, errors in filter(None, parts or []):
                    if errors:
                        bad.update(errors)
                        writer.mark_bad(np.array(sorted(errors)))
                    if len(rows):
                        background.put(rows, feats, pooled)
                    bar.update(len(rows) + len(errors))
    finally:
        if background:
            background.close()
    return bad


def _encode(model: FrozenEncoder, batch: tuple, dev: torch.device, dtype: np.dtype) -> Part:
    rows, images, errors = batch
    ok = np.array([e == "" for e in errors])
    rows = rows.numpy()
    failed = {int(r): e for r, e, good in zip(rows, errors, ok) if not good}
    if not ok.any():
        return rows[:0], np.empty(0), None, failed
    images = images[torch.from_numpy(ok)].to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
    tokens, pooled = model.encode(images)  # [b, L, D], [b, E] or None
    pooled = pooled.float().cpu().numpy().astype(dtype) if pooled is not None else None
    return rows[ok], tokens.float().cpu().numpy().astype(dtype), pooled, failed


def _output_shape(model: FrozenEncoder, dev: torch.device) -> tuple[int, int]:
    """(L, D) of the encoder's output, from one dummy image."""
    size = model.preprocessing.crop
    with torch.inference_mode():
        out = model(torch.zeros(1, 3, size, size, device=dev))  # [1, L, D]
    return out.shape[1], out.shape[2]
