"""The extraction loop: manifest + encoder -> a complete, resumable cache file.

Batches are decoded by DataLoader workers, run through the frozen encoder under inference mode
(channels_last, fp16 autocast on CUDA), and written by a background thread. Re-running with the
same settings finds the complete cache and returns at once; after an interruption it continues
with the rows not yet written.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from pipeline.cache import hdf5
from pipeline.cache.key import CacheSpec, image_digests
from pipeline.cache.sidecar import sidecar_path
from pipeline.cache.writer import CacheWriter
from pipeline.data.manifest import Manifest
from pipeline.device import resolve_device
from pipeline.distributed import Collective
from pipeline.encoders import build_encoder
from pipeline.encoders.base import FrozenEncoder
from pipeline.extract.background import BackgroundWriter
from pipeline.extract.images import ImageFiles
from pipeline.extract.result import ExtractResult, cache_path_for
from pipeline.extract.reuse import finished_report, record_request
from pipeline.io import atomic_write_json


def cache_spec(manifest: Manifest, encoder: FrozenEncoder, dtype: str) -> CacheSpec:
    image_set, image_names = image_digests(manifest)
    return CacheSpec(encoder=encoder.describe(), dtype=dtype, image_set=image_set, image_names=image_names,
                     n_images=len(manifest.images))


def run_extraction(manifest: Manifest, encoder: str, weights: str | None, grid: int | None, cache_dir: str | Path,
                   batch_size: int, workers: int, device: str, dtype: str, progress: bool, request: str) -> ExtractResult:
    """The full check (build the encoder, compare cache keys), then extract whatever rows are missing.

    Under ``torchrun`` every rank encodes its share of the remaining rows (rank r takes every
    world-th one) and rank 0, the only writer, stores them: one cache file, usable as a whole.
    ``request`` (``reuse.request_digest``) is recorded in the finished cache's report.
    """
    comm = Collective.from_env()
    try:
        return _extract(comm, manifest, build_encoder(encoder, weights, grid), cache_dir, batch_size, workers,
                        device, dtype, progress, request)
    finally:
        comm.close()


def _extract(comm: Collective, manifest: Manifest, model: FrozenEncoder, cache_dir: str | Path, batch_size: int,
             workers: int, device: str, dtype: str, progress: bool, request: str) -> ExtractResult:
    spec = cache_spec(manifest, model, dtype)
    path = cache_path_for(cache_dir, manifest, spec)
    finished = comm.broadcast(finished_report(path) if comm.is_main else None)
    if finished is not None:
        if comm.is_main:
            record_request(path, request)
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
        atomic_write_json(sidecar_path(path), {
            "key": spec.key, "spec": spec.to_dict(), "manifest": manifest.name,
            "complete": bool(np.all(status != hdf5.PENDING)),
            "n_images": spec.n_images, "n_done": int((status == hdf5.DONE).sum()), "bad": bad,
            "processes": comm.world, "requests": [request],
        })
    result = comm.broadcast(result)
    result.main_process = comm.is_main
    return result


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
