"""The extraction loop: manifest + encoder -> a complete, resumable cache file.

Batches are decoded by DataLoader workers, run through the frozen encoder (``inference``:
channels_last, fp16 autocast on CUDA, the same for captioning new images), and written by a
background thread (``loop``). Re-running with the same settings finds the complete cache and
returns at once; after an interruption it continues with the rows not yet written, and rows whose
image file changed are redone (only those). Images are files or members of img2dataset tars
(``Manifest.image_source``), streamed from the tar. Under torchrun the cache is written in parts,
one rank per part, and joined (``in_parts``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from pipeline.augmentation import View
from pipeline.cache import hdf5
from pipeline.cache.key import CacheSpec
from pipeline.cache.parts import is_joined, parts_folder
from pipeline.cache.sidecar import sidecar_path
from pipeline.cache.state import confirmed_complete
from pipeline.cache.writer import storage_errors
from pipeline.data.manifest import Manifest
from pipeline.device import resolve_device
from pipeline.distributed import Collective
from pipeline.encoders import build_encoder
from pipeline.encoders.base import FrozenEncoder
from pipeline.errors import CapcacheError
from pipeline.extract.batch_size import chosen_batch_size, recorded_computes
from pipeline.extract.in_parts import Filling, extract_in_parts
from pipeline.extract.encoder_facts import remembered_output_shape
from pipeline.extract.inference import prepare_encoder
from pipeline.extract.loop import fill_to_end, open_writer, rows_to_do, start_decoding
from pipeline.extract.result import ExtractResult, bad_images, cache_path_for, cache_spec, sidecar_report
from pipeline.extract.reuse import record_request, reused_result
from pipeline.extract.siblings import extend_from_siblings, siblings
from pipeline.frozen_heap import frozen_heap
from pipeline.io import atomic_write_json


def compute_of(dev: torch.device, batch_size: int | None = None) -> dict:
    """Where, in what precision and at what batch size features are computed: recorded per cache,
    never mixed in one (``pipeline.cache.compute``); without ``batch_size``, the first two."""
    compute = {"device": dev.type, "precision": "float16-autocast" if dev.type == "cuda" else "float32"}
    return compute if batch_size is None else {**compute, "batch_size": batch_size}


def run_extraction(manifest: Manifest, encoder: str, weights: str | None, grid: int | None, cache_dir: str | Path,
                   batch_size: int | None, workers: int, device: str, dtype: str, progress: bool,
                   requests: list[tuple[View | None, str]], stats: np.ndarray,
                   rows_per_part: int | None = None) -> list[ExtractResult]:
    """The full check (build the encoder, compare cache keys), then extract whatever rows are missing.

    Under ``torchrun``, or when ``rows_per_part`` is given, the cache is written in parts of that
    many rows (default: ``partition.default_rows_per_part``), every rank filling whole parts, and
    rank 0 joins them into one cache file; a cache once started in parts is continued in parts, by
    any number of processes. ``batch_size`` None: the cache's own, or the device's default
    (``batch_size.chosen_batch_size``). ``requests``: (view, request) of each cache to fill, one
    after the other with one encoder and one process group: the clean cache (view None) and
    augmented views (``pipeline.encoders.views``); the request (``reuse.request_digest``) is
    recorded in the finished cache's report. ``stats`` [N, 2] are the image files' (size,
    mtime_ns) now. No full garbage collection walks the heap the process had before
    (``frozen_heap``): it would stall the encoder for a fifth of a second each time.
    """
    comm = Collective.from_env()
    try:
        with frozen_heap():
            model = build_encoder(encoder, weights, grid)
            results = []
            for view, request in requests:
                model.view = view
                results.append(_extract(comm, manifest, model, cache_dir, batch_size, workers, device, dtype, progress,
                                        request, stats, rows_per_part))
            return results
    finally:
        comm.close()


def _extract(comm: Collective, manifest: Manifest, model: FrozenEncoder, cache_dir: str | Path, batch_size: int | None,
             workers: int, device: str, dtype: str, progress: bool, request: str, stats: np.ndarray,
             rows_per_part: int | None) -> ExtractResult:
    spec = cache_spec(manifest, model, dtype, stats)
    path = cache_path_for(cache_dir, manifest, spec)
    bad_rows = comm.broadcast(confirmed_complete(path, spec.key, stats) if comm.is_main else None)
    if bad_rows is not None:
        result = None
        if comm.is_main:
            result = reused_result(path, spec.key, manifest, bad_rows)
            record_request(path, request, sidecar_report(spec, manifest, result.bad, complete=True, n_done=None,
                                                         world=1, request=request))
        result = comm.broadcast(result)
        result.main_process = comm.is_main
        return result

    dev = comm.device(resolve_device(device))
    model = prepare_encoder(model, dev)
    batch_size = comm.broadcast(chosen_batch_size(batch_size, dev, recorded_computes(path, spec, compute_of(dev)))
                                if comm.is_main else None)
    compute = compute_of(dev, batch_size)
    in_parts = comm.broadcast(parts_folder(path).is_dir() or is_joined(path) if comm.is_main else None)
    if comm.world > 1 or rows_per_part is not None or in_parts:
        filling = Filling(model, dtype, dev, compute, *remembered_output_shape(model, dev), batch_size, workers)
        return extract_in_parts(comm, manifest, spec, path, filling, stats, rows_per_part, progress, request)
    return _extract_one_file(manifest, spec, path, model, dev, compute, batch_size, workers, stats, progress, request)


def _extract_one_file(manifest: Manifest, spec: CacheSpec, path: Path, model: FrozenEncoder, dev: torch.device,
                      compute: dict, batch_size: int, workers: int, stats: np.ndarray, progress: bool,
                      request: str) -> ExtractResult:
    """One process writes one cache file.

    The decoding workers start first, on the rows the file will most likely need (read before the
    writer opens it), so their start and first batches overlap the creation of the file (and, the
    first time an encoder is used, the dummy forward pass that finds its output shape); when the
    writer finds other rows to do (changed images, rows a sibling cache holds) they are started
    again on those.
    """
    ids = [r.image_id for r in manifest.images]
    sources = [manifest.image_source(r) for r in manifest.images]
    created = not path.exists()
    start = time.perf_counter()
    found = siblings(path, spec, compute)
    expected = _expected_rows(path, spec) if not found else None  # siblings may fill some rows
    early = start_decoding(model, sources, expected, batch_size, workers, dev) if expected is not None else None
    n_tokens, dim = remembered_output_shape(model, dev)
    writer = open_writer(path, spec, manifest.images, manifest.image_root, n_tokens, dim, model.pooled_dim, compute)
    try:
        notes = [extend_from_siblings(writer, found, created)]
        todo, changed = rows_to_do(writer, sources, stats, compute)
        if progress:
            size = hdf5.estimated_bytes(len(ids), n_tokens, dim, model.pooled_dim, spec.dtype)
            tqdm.write(f"cache {path} ({len(ids)} images x {n_tokens} x {dim} {spec.dtype}, at most "
                       f"{size / 2**30:.2f} GiB); {len(todo)} images to extract"
                       + (f", {len(changed)} of them changed" if len(changed) else ""))
        if early is None or not np.array_equal(expected, todo):
            early = None  # its workers stop; decode what the file needs
            batches = start_decoding(model, sources, todo, batch_size, workers, dev, writer.inherited_handles())
        else:
            batches = early
        with tqdm(total=len(todo), desc="extract", unit="img", disable=not progress) as bar:
            bad_rows, status = fill_to_end(writer, model, batches, batch_size, dev, bar)
    finally:
        writer.close()
    bad = bad_images(manifest, bad_rows)
    result = ExtractResult(path, spec.key, spec.n_images, int(len(todo) - len(bad_rows)), bad,
                           seconds=time.perf_counter() - start, changed=[ids[r] for r in changed],
                           notes=[n for n in notes if n])
    with storage_errors(sidecar_path(path), 1 << 20):
        atomic_write_json(sidecar_path(path), sidecar_report(
            spec, manifest, bad, complete=bool(np.all(status != hdf5.PENDING)),
            n_done=int((status == hdf5.DONE).sum()), world=1, request=request))
    return result


def _expected_rows(path: Path, spec: CacheSpec) -> np.ndarray | None:
    """The rows the writer will most likely find to do, read without opening it for writing: all of
    a new file's, the unfinished ones of an existing file of this key; None when the file cannot be
    read now (the writer then says why)."""
    if not path.exists():
        return np.arange(spec.n_images)
    try:
        with hdf5.open_for_reading(path) as f:
            if f.attrs.get(hdf5.ATTR_KEY) != spec.key:
                return None
            return np.flatnonzero(f[hdf5.STATUS][:] != hdf5.DONE)
    except (CapcacheError, OSError, KeyError):
        return None
