"""Filling one cache file: which of its rows to do, and the decode → encode → write loop over them.

The one-file extraction (``runner``) and every part of a cache written in parts (``in_parts``)
run exactly this, so a part resumes, redoes changed images and skips bad files like any cache.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from pipeline.cache.contents import changed_content, moved_rows
from pipeline.cache.writer import CacheWriter, close_inherited
from pipeline.encoders.base import FrozenEncoder
from pipeline.extract.background import BackgroundWriter
from pipeline.extract.images import HashedImageFiles
from pipeline.extract.inference import encode_images


def rows_to_do(writer: CacheWriter, files: list[Path], stats: np.ndarray, compute: dict) -> tuple[np.ndarray, np.ndarray]:
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


def start_decoding(model: FrozenEncoder, files: list[Path], rows: np.ndarray, batch_size: int, workers: int,
                   dev: torch.device, inherited: tuple[tuple[int, int, int], ...] = ()) -> Iterator[tuple]:
    """Start DataLoader workers decoding ``rows`` of ``files`` now; batches come as they are ready.

    ``inherited``: ``CacheWriter.inherited_handles()`` of a cache open in this process, which a
    forked worker must close (``close_inherited``).
    """
    images = HashedImageFiles(files, rows, model.preprocessing.transform(), model.preprocessing.crop)
    loader = DataLoader(images, batch_size=batch_size, num_workers=workers, pin_memory=dev.type == "cuda",
                        worker_init_fn=functools.partial(close_inherited, inherited) if workers and inherited else None)
    return iter(loader)


def fill(writer: CacheWriter, model: FrozenEncoder, batches: Iterator[tuple], dev: torch.device,
         bar: tqdm) -> dict[int, str]:
    """Encode the decoded ``batches`` (``start_decoding``) and write them; {bad row: error}.

    The HDF5 write of batch k (a background thread) overlaps the forward pass of batch k+1.
    """
    dtype = np.dtype(writer.spec.dtype)
    bad: dict[int, str] = {}
    background = BackgroundWriter(writer.write)
    try:
        for batch in batches:  # (rows [B], images [B, 3, S, S], errors, digests, sizes [B], mtimes [B])
            done, feats, pooled, digests, stats, errors, bad_stats = _encode(model, batch, dev, dtype)
            if errors:
                bad.update(errors)
                writer.mark_bad(np.array(sorted(errors)), bad_stats)
            if len(done):
                background.put(done, feats, pooled, digests, stats)
            bar.update(len(done) + len(errors))
    finally:
        background.close()
    return bad


Encoded = tuple[np.ndarray, np.ndarray, "np.ndarray | None", list, np.ndarray, dict, np.ndarray]
# rows [b], features [b, L, D], pooled [b, E], digests [b], stats [b, 2], {bad row: error}, bad rows' stats [k, 2]


def _encode(model: FrozenEncoder, batch: tuple, dev: torch.device, dtype: np.dtype) -> Encoded:
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
