"""Extraction in parts: every rank of a torchrun job fills whole parts of the cache, rank 0 joins them.

Each part is an ordinary cache file over a slice of the manifest's rows (``partition``), written
with the resumable writer by the one rank that owns it, so ranks on different machines never send
features to each other and a rank that dies loses only the rows of its own part it had not
flushed. When every rank is done, rank 0 writes the joined file (``pipeline.cache.parts``) under
the name and key a one-process extraction would give. Running the same command again, with any
number of processes or none, resumes every part and joins again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from pipeline.cache import hdf5
from pipeline.cache.lock import WriteLock
from pipeline.cache.key import CacheSpec
from pipeline.cache.parts import Part, is_joined, join_parts, part_path
from pipeline.cache.sidecar import sidecar_path
from pipeline.cache.writer import storage_errors
from pipeline.data.image_source import holding_name, stored_name
from pipeline.data.manifest import Manifest
from pipeline.distributed import Collective
from pipeline.encoders.base import FrozenEncoder
from pipeline.errors import CapcacheError
from pipeline.extract.loop import fill_to_end, open_writer, rows_to_do, start_decoding
from pipeline.extract.partition import settled_partition
from pipeline.extract.result import ExtractResult, bad_images, cache_spec, sidecar_report
from pipeline.io import atomic_write_json


@dataclass
class Filling:
    """How to fill parts: the encoder on its device, and what every part of this cache shares."""
    model: FrozenEncoder
    dtype: str  # of the stored features
    dev: torch.device
    compute: dict
    n_tokens: int
    dim: int
    batch_size: int
    workers: int


@dataclass
class PartOutcome:
    """What a rank did to one part; rows are the cache's, not the part's."""
    start: int
    stop: int
    key: str
    extracted: int
    bad: dict[int, str] = field(default_factory=dict)
    changed: list[int] = field(default_factory=list)
    complete: bool = False
    n_done: int = 0


def extract_in_parts(comm: Collective, manifest: Manifest, spec: CacheSpec, path: Path, filling: Filling,
                     stats: np.ndarray, rows_per_part: int | None, progress: bool, request: str) -> ExtractResult:
    """Fill this rank's parts of the cache at ``path``, then (rank 0) join them; the job's result on every rank."""
    start_time = time.perf_counter()
    partition = comm.broadcast(settled_partition(path, [holding_name(r) for r in manifest.images], rows_per_part,
                                                 comm.world) if comm.is_main else None)
    ranges = partition.ranges()
    mine = partition.of_rank(comm.rank, comm.world)
    plain = path if path.is_file() and not is_joined(path) else None  # an interrupted one-process run to take over
    if comm.is_main and progress:
        size = hdf5.estimated_bytes(len(manifest.images), filling.n_tokens, filling.dim, filling.model.pooled_dim,
                                    spec.dtype)
        tqdm.write(f"cache {path} in {partition.n_parts} parts of up to {partition.rows_per_part} rows "
                   f"({len(manifest.images)} images x {filling.n_tokens} x {filling.dim} {spec.dtype}, at most "
                   f"{size / 2**30:.2f} GiB); {comm.world} processes, this one writes {len(mine)} parts")
    outcomes = []
    with tqdm(total=partition.rows_of_rank(comm.rank, comm.world), desc="extract", unit="img",
              disable=not (progress and comm.is_main)) as bar:
        for index in mine:
            outcomes.append(_fill_part(manifest, *ranges[index], path, stats, filling, plain, bar))
    everyone = comm.gather(outcomes)
    result = None
    if comm.is_main:
        done = sorted((o for rank in everyone for o in rank), key=lambda o: o.start)
        result = _joined(manifest, spec, path, done, time.perf_counter() - start_time, comm.world, request)
    result = comm.broadcast(result)
    result.main_process = comm.is_main
    return result


def _fill_part(manifest: Manifest, start: int, stop: int, path: Path, stats: np.ndarray, filling: Filling,
               plain: Path | None, bar: tqdm) -> PartOutcome:
    records = manifest.images[start:stop]
    part_manifest = Manifest(f"{manifest.name}[{start}:{stop}]", manifest.image_root, records)
    spec = cache_spec(part_manifest, filling.model, filling.dtype, stats[start:stop])
    sources = [manifest.image_source(r) for r in records]
    writer = open_writer(part_path(path, start, spec.key), spec, records, manifest.image_root, filling.n_tokens,
                         filling.dim, filling.model.pooled_dim, filling.compute)
    try:
        if plain is not None and len(writer.rows_to_do()):
            writer.copy_slice_from(plain, start)
        todo, changed = rows_to_do(writer, sources, stats[start:stop], filling.compute)
        bar.update(stop - start - len(todo))
        batches = start_decoding(filling.model, sources, todo, filling.batch_size, filling.workers, filling.dev,
                                 writer.inherited_handles())
        bad, status = fill_to_end(writer, filling.model, batches, filling.batch_size, filling.dev, bar)
    finally:
        writer.close()
    return PartOutcome(start, stop, spec.key, int(len(todo) - len(bad)), {start + r: e for r, e in bad.items()},
                       [start + int(r) for r in changed], not (status == hdf5.PENDING).any(),
                       int((status == hdf5.DONE).sum()))


def _joined(manifest: Manifest, spec: CacheSpec, path: Path, outcomes: list[PartOutcome], seconds: float,
            world: int, request: str) -> ExtractResult:
    """Rank 0: join every part under the write lock of the cache, write its report; the job's result."""
    parts = [Part(o.start, o.stop, o.key, part_path(path, o.start, o.key)) for o in outcomes]
    unseen = [p.path for p in parts if not p.path.is_file()]
    if unseen:
        raise CapcacheError(f"{len(unseen)} of the {len(parts)} part files are not visible to rank 0 (e.g. "
                            f"{unseen[0]}): every node must write to one shared --cache-dir; copy the parts there "
                            "and run again to join them")
    lock = WriteLock(path)
    try:
        with storage_errors(path):
            join_parts(path, parts, spec, [r.image_id for r in manifest.images],
                       [stored_name(r) for r in manifest.images])
    finally:
        lock.release()
    ids = [r.image_id for r in manifest.images]
    bad_rows = {row: error for o in outcomes for row, error in o.bad.items()}
    bad = bad_images(manifest, bad_rows)
    complete = all(o.complete for o in outcomes)
    with storage_errors(sidecar_path(path), 1 << 20):
        atomic_write_json(sidecar_path(path), sidecar_report(spec, manifest, bad, complete,
                                                             sum(o.n_done for o in outcomes), world, request))
    return ExtractResult(path, spec.key, spec.n_images, sum(o.extracted for o in outcomes), bad, seconds=seconds,
                         changed=[ids[r] for o in outcomes for r in o.changed])
