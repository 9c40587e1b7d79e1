"""The extraction loop: manifest + encoder -> a complete, resumable cache file.

Batches are decoded by DataLoader workers, run through the frozen encoder (``inference``:
channels_last, fp16 autocast on CUDA, the same for captioning new images), and written by a
background thread. Re-running with the same settings finds the complete cache and returns at
once; after an interruption it continues with the rows not yet written, and rows whose image file
changed are redone (only those).
"""

from __future__ import annotations

import functools
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from pipeline.cache import hdf5
from pipeline.cache.contents import changed_content, moved_rows
from pipeline.cache.key import CacheSpec, image_digests
from pipeline.cache.sidecar import sidecar_path
from pipeline.cache.state import confirmed_complete
from pipeline.cache.writer import CacheWriter, close_inherited, storage_errors
from pipeline.data.manifest import Manifest
from pipeline.device import resolve_device
from pipeline.distributed import Collective
from pipeline.encoders import build_encoder
from pipeline.encoders.base import FrozenEncoder
from pipeline.extract.background import BackgroundWriter
from pipeline.extract.images import HashedImageFiles
from pipeline.extract.inference import encode_images, prepare_encoder
from pipeline.extract.result import ExtractResult, cache_path_for
from pipeline.extract.reuse import record_request, reused_result
from pipeline.extract.siblings import extend_from_siblings
from pipeline.io import atomic_write_json


def cache_spec(manifest: Manifest, encoder: FrozenEncoder, dtype: str, stats: np.ndarray | None = None) -> CacheSpec:
    image_set, image_names = image_digests(manifest, None if stats is None else stats[:, 0])
    return CacheSpec(encoder=encoder.describe(), dtype=dtype, image_set=image_set, image_names=image_names,
                     n_images=len(manifest.images))


def compute_of(dev: torch.device) -> dict:
    """Where and in what precision features are computed: recorded per cache, never mixed in one."""
    return {"device": dev.type, "precision": "float16-autocast" if dev.type == "cuda" else "float32"}


def run_extraction(manifest: Manifest, encoder: str, weights: str | None, grid: int | None, cache_dir: str | Path,
                   batch_size: int, workers: int, device: str, dtype: str, progress: bool, request: str,
                   stats: np.ndarray) -> ExtractResult:
    """The full check (build the encoder, compare cache keys), then extract whatever rows are missing.

    Under ``torchrun`` every rank encodes its share of the remaining rows (rank r takes every
    world-th one) and rank 0, the only writer, stores them: one cache file, usable as a whole.
    ``request`` (``reuse.request_digest``) is recorded in the finished cache's report; ``stats``
    [N, 2] are the image files' (size, mtime_ns) now.
    """
    comm = Collective.from_env()
    try:
        return _extract(comm, manifest, build_encoder(encoder, weights, grid), cache_dir, batch_size, workers,
                        device, dtype, progress, request, stats)
    finally:
        comm.close()


def _extract(comm: Collective, manifest: Manifest, model: FrozenEncoder, cache_dir: str | Path, batch_size: int,
             workers: int, device: str, dtype: str, progress: bool, request: str, stats: np.ndarray) -> ExtractResult:
    spec = cache_spec(manifest, model, dtype, stats)
    path = cache_path_for(cache_dir, manifest, spec)
    bad_rows = comm.broadcast(confirmed_complete(path, spec.key, stats) if comm.is_main else None)
    if bad_rows is not None:
        result = None
        if comm.is_main:
            result = reused_result(path, spec.key, manifest, bad_rows)
            record_request(path, request, _report(spec, manifest, result.bad, complete=True, n_done=None,
                                                  world=1, request=request))
        result = comm.broadcast(result)
        result.main_process = comm.is_main
        return result

    dev = comm.device(resolve_device(device))
    compute = compute_of(dev)
    model = prepare_encoder(model, dev)
    n_tokens, dim = _output_shape(model, dev)
    ids = [r.image_id for r in manifest.images]
    files = [manifest.image_path(r) for r in manifest.images]
    created = not path.exists()
    start = time.perf_counter()
    writer = CacheWriter(path, spec, ids, n_tokens, dim, model.pooled_dim, files=[r.file for r in manifest.images],
                         image_root=os.path.abspath(manifest.image_root), compute=compute) \
        if comm.is_main else None
    try:
        notes = [extend_from_siblings(writer, spec, compute, created)] if writer else []
        todo, changed = comm.broadcast(_rows_to_do(writer, files, stats, compute) if writer else None)
        if writer and progress:
            size = hdf5.estimated_bytes(len(ids), n_tokens, dim, model.pooled_dim, dtype)
            tqdm.write(f"cache {path} ({len(ids)} images x {n_tokens} x {dim} {dtype}, at most {size / 2**30:.2f} GiB); "
                       f"{len(todo)} images to extract" + (f", {len(changed)} of them changed" if len(changed) else ""))
        mine = todo[comm.rank::comm.world]
        images = HashedImageFiles(files, mine, model.preprocessing.transform(), model.preprocessing.crop)
        loader = DataLoader(images, batch_size=batch_size, num_workers=workers, pin_memory=dev.type == "cuda",
                            worker_init_fn=functools.partial(close_inherited, writer.inherited_handles())
                            if writer and workers else None)
        steps = math.ceil(math.ceil(len(todo) / comm.world) / batch_size)  # rank 0 holds the most rows
        bad_rows = _run(model, loader, steps, writer, comm, dev, np.dtype(dtype), len(todo), progress)
        status = writer.status_array() if writer else None
        if writer and not (status == hdf5.PENDING).any():
            writer.record_image_set(spec.image_set)
    finally:
        if writer:
            writer.close()
    result = None
    if comm.is_main:
        bad = [{"image_id": ids[r], "file": str(manifest.images[r].file), "error": err}
               for r, err in sorted(bad_rows.items())]
        result = ExtractResult(path, spec.key, spec.n_images, int(len(todo) - len(bad_rows)), bad,
                               seconds=time.perf_counter() - start, changed=[ids[r] for r in changed],
                               notes=[n for n in notes if n])
        with storage_errors(sidecar_path(path), 1 << 20):
            atomic_write_json(sidecar_path(path), _report(
                spec, manifest, bad, complete=bool(np.all(status != hdf5.PENDING)),
                n_done=int((status == hdf5.DONE).sum()), world=comm.world, request=request))
    result = comm.broadcast(result)
    result.main_process = comm.is_main
    return result


def _report(spec: CacheSpec, manifest: Manifest, bad: list[dict], complete: bool, n_done: int | None, world: int,
            request: str) -> dict:
    """The sidecar report (``pipeline.cache.sidecar``) of a cache."""
    return {"key": spec.key, "spec": spec.to_dict(), "manifest": manifest.name, "complete": complete,
            "n_images": spec.n_images, "n_done": spec.n_images - len(bad) if n_done is None else n_done,
            "bad": bad, "processes": world, "requests": [request]}


def _rows_to_do(writer: CacheWriter, files: list[Path], stats: np.ndarray, compute: dict) -> tuple[np.ndarray, np.ndarray]:
    """(rows to extract, those of them whose image changed since written).

    A written row whose file's size or mtime moved is hashed again: the same content only gets its
    new stats; other content is marked pending (before anything is overwritten) and redone.
    """
    todo = writer.rows_to_do()
    moved = moved_rows(writer.stored_stats(), stats, np.setdiff1d(np.arange(len(files)), todo))
    changed = changed_content(files, writer.stored_digests(), moved)
    touched = np.setdiff1d(moved, changed)
    if len(touched):
        writer.update_stats(touched, stats[touched])
    todo = np.union1d(todo, changed)
    if len(todo):
        writer.refuse_mixing(compute)
    if len(changed):
        writer.mark_pending(changed)
    return todo, changed


Part = tuple[np.ndarray, np.ndarray, "np.ndarray | None", list, np.ndarray, dict, np.ndarray]
# rows [b], features [b, L, D], pooled [b, E], digests [b], stats [b, 2], {bad row: error}, bad rows' stats [k, 2]


def _run(model: FrozenEncoder, loader: DataLoader, steps: int, writer: CacheWriter | None, comm: Collective,
         dev: torch.device, dtype: np.dtype, total: int, progress: bool) -> dict[int, str]:
    """Encode this rank's batches; rank 0 gathers every rank's batch per step and writes it.

    Every rank takes part in exactly ``steps`` gathers (an empty part once its rows run out), so
    ranks with fewer rows never leave the others waiting.
    """
    bad: dict[int, str] = {}
    background = BackgroundWriter(writer.write) if writer else None
    batches = iter(loader)
    try:
        with tqdm(total=total, desc="extract", unit="img", disable=not (progress and comm.is_main)) as bar:
            for _ in range(steps):
                batch = next(batches, None)  # (rows [B], images [B, 3, S, S], errors, digests, sizes [B], mtimes [B])
                parts = comm.gather(_encode(model, batch, dev, dtype) if batch is not None else None)
                for rows, feats, pooled, digests, stats, errors, bad_stats in filter(None, parts or []):
                    if errors:
                        bad.update(errors)
                        writer.mark_bad(np.array(sorted(errors)), bad_stats)
                    if len(rows):
                        background.put(rows, feats, pooled, digests, stats)
                    bar.update(len(rows) + len(errors))
    finally:
        if background:
            background.close()
    return bad


def _encode(model: FrozenEncoder, batch: tuple, dev: torch.device, dtype: np.dtype) -> Part:
    rows, images, errors, digests, sizes, mtimes = batch
    ok = np.array([e == "" for e in errors])
    rows = rows.numpy()
    stats = np.stack([sizes.numpy(), mtimes.numpy()], axis=1).astype(np.int64)  # [B, 2]
    failed = {int(r): e for r, e, good in zip(rows, errors, ok) if not good}
    bad_stats = stats[~ok]  # rows arrive sorted, so these follow sorted(failed)
    good_digests = [d for d, good in zip(digests, ok) if good]
    if not ok.any():
        return rows[:0], np.empty(0), None, [], stats[:0], failed, bad_stats
    tokens, pooled = encode_images(model, images[torch.from_numpy(ok)], dev)  # [b, L, D], [b, E] or None
    pooled = pooled.float().cpu().numpy().astype(dtype) if pooled is not None else None
    return rows[ok], tokens.float().cpu().numpy().astype(dtype), pooled, good_digests, stats[ok], failed, bad_stats


def _output_shape(model: FrozenEncoder, dev: torch.device) -> tuple[int, int]:
    """(L, D) of the encoder's output, from one dummy image."""
    size = model.preprocessing.crop
    with torch.inference_mode():
        out = model(torch.zeros(1, 3, size, size, device=dev))  # [1, L, D]
    return out.shape[1], out.shape[2]
