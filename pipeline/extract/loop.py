"""Filling one cache file: which of its rows to do, and the decode → encode → write loop over them.

The one-file extraction (``runner``) and every part of a cache written in parts (``in_parts``)
run exactly this, so a part resumes, redoes changed images and skips bad files like any cache.
Rows are image files or members of img2dataset tars (``ImageSource``), read by ``HashedImageFiles``
and ``ShardImages`` alike.
"""

from __future__ import annotations

import functools
import itertools
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, default_collate, get_worker_info
from tqdm.auto import tqdm

from pipeline.cache import hdf5
from pipeline.cache.contents import changed_content, moved_rows
from pipeline.cache.key import CacheSpec
from pipeline.cache.writer import CacheWriter, close_inherited
from pipeline.data.image_source import ImageSource, stored_name
from pipeline.data.manifest import ImageRecord
from pipeline.encoders.base import FrozenEncoder
from pipeline.errors import CapcacheError
from pipeline.extract.background import BackgroundWriter
from pipeline.extract.encoder_facts import SHAPES_MEMO
from pipeline.extract.images import HashedImageFiles
from pipeline.extract.inference import encode_images
from pipeline.extract.rebatch import full_batches
from pipeline.extract.shard_images import ShardImages
from pipeline.memo import memo_path


def rows_to_do(writer: CacheWriter, sources: Sequence[ImageSource], stats: np.ndarray,
               compute: dict) -> tuple[np.ndarray, np.ndarray]:
    """(rows to extract, those of them whose image changed since written).

    A written row whose file's size or mtime moved is hashed again (a tar's rows: the tar read once):
    the same content only gets its new stats; other content is marked pending (before anything is
    overwritten) and redone.
    """
    todo = writer.rows_to_do()
    moved = moved_rows(writer.stored_stats(), stats, np.setdiff1d(np.arange(len(sources)), todo))
    changed = changed_content(sources, writer.stored_digests(), moved)
    touched = np.setdiff1d(moved, changed)
    if len(touched):
        writer.update_stats(touched, stats[touched])
    todo = np.union1d(todo, changed)
    if len(todo):
        writer.refuse_mixing(compute)
    if len(changed):
        writer.mark_pending(changed)
    return todo, changed


def start_decoding(model: FrozenEncoder, sources: Sequence[ImageSource], rows: np.ndarray, batch_size: int,
                   workers: int, dev: torch.device,
                   inherited: tuple[tuple[int, int, int], ...] = ()) -> Iterator[tuple]:
    """Start DataLoader workers decoding ``rows`` of ``sources`` now; batches come as they are ready.

    Image files come first, then the rows inside tars (their workers start when the files are
    done); the workers' short batches are joined into full ones (``rebatch``). ``inherited``:
    ``CacheWriter.inherited_handles()`` of a cache open in this process, which a forked worker must
    close (``close_inherited``).
    """
    transform, crop = model.input_transform(), model.preprocessing.crop
    in_shard = np.array([sources[r].in_shard for r in rows], dtype=bool)
    datasets = []
    if not in_shard.all() or not len(rows):
        datasets.append(HashedImageFiles([s.file for s in sources], rows[~in_shard], transform, crop))
    if in_shard.any():
        datasets.append(ShardImages(sources, rows[in_shard], transform, crop))
    closing = functools.partial(close_inherited, inherited) if workers and inherited else None
    loaders = [DataLoader(d, batch_size=batch_size, num_workers=workers, pin_memory=dev.type == "cuda",
                          worker_init_fn=closing, collate_fn=_channels_last_batch) for d in datasets]
    batches = itertools.chain(iter(loaders[0]), *loaders[1:])  # the first one's workers start now
    return full_batches(batches, batch_size)


def _channels_last_batch(items: list[tuple]) -> tuple:
    """The batch, its images [B, 3, S, S] laid out channels_last as the encoder runs them, made in the
    decoding worker rather than on the encoder's critical path.

    The images are copied once, straight into the layout and into shared memory (as
    ``default_collate`` allocates a worker's batch), which is how the main process receives them.
    Stacking them first, re-laying the stack out and letting the queue move that into shared memory
    copied every batch three times: 4.5 to 5.3 ms of a worker's CPU an image (ResNet-50 input from
    500 x 375 JPEGs, decoding included) against 3.4 to 3.5 ms, taken from the cores the encoder's
    threads run on.
    """
    images = [item[1] for item in items]
    first = images[0]  # [3, S, S]
    shape = (len(images), *first.shape)
    if get_worker_info() is not None:
        batch = first.new(first._typed_storage()._new_shared(len(images) * first.numel(), device=first.device))
    else:
        batch = first.new()
    batch = batch.resize_(shape, memory_format=torch.channels_last)  # [B, 3, S, S]
    for image, into in zip(images, batch):
        into.copy_(image)
    rows, *rest = default_collate([(item[0], *item[2:]) for item in items])
    return rows, batch, *rest


def fill(writer: CacheWriter, model: FrozenEncoder, batches: Iterator[tuple], batch_size: int, dev: torch.device,
         bar: tqdm) -> dict[int, str]:
    """Encode the decoded ``batches`` (``start_decoding``, of ``batch_size`` images) and write them;
    {bad row: error}. Every batch runs as a full one (``encode_images``' ``pad_to``), so a row's
    features do not depend on where a part, a resumed run or a bad image cut the batches.

    The HDF5 write of batch k (a background thread) overlaps the forward pass of batch k+1, and so
    does the rounding of its features to the cache dtype (``CacheWriter.write``): 4 to 5 ms a batch of
    16 ResNet-50 grids on 2 cores, otherwise spent between two forward passes.
    """
    bad: dict[int, str] = {}
    background = BackgroundWriter(writer.write)
    try:
        for batch in batches:  # (rows [B], images [B, 3, S, S], errors, digests, sizes [B], mtimes [B])
            done, feats, pooled, digests, stats, errors, bad_stats = _encode(model, _in_row_order(batch), dev,
                                                                             batch_size)
            if errors:
                bad.update(errors)
                writer.mark_bad(np.array(sorted(errors)), bad_stats)
            if len(done):
                _check_shape(writer, feats)
                background.put(done, feats, pooled, digests, stats)
            bar.update(len(done) + len(errors))
    finally:
        background.close()
    return bad


def _check_shape(writer: CacheWriter, feats: np.ndarray) -> None:
    """Refuse features of another shape than the file's (made from a remembered shape, or by an
    earlier run of what claims to be the same encoder) before anything is written."""
    if feats.shape[1:] != writer.feature_shape:
        raise CapcacheError(f"{writer.path} holds features of shape {list(writer.feature_shape)} per image but the "
                            f"encoder gives {list(feats.shape[1:])}; delete {writer.path} and "
                            f"{memo_path(SHAPES_MEMO)}, then run again")


def open_writer(path: Path, spec: CacheSpec, records: Sequence[ImageRecord], image_root: str, n_tokens: int,
                dim: int, pooled_dim: int | None, compute: dict) -> CacheWriter:
    """The resumable writer of a cache file (a whole cache, or one part) over ``records``' images."""
    return CacheWriter(path, spec, [r.image_id for r in records], n_tokens, dim, pooled_dim,
                       files=[stored_name(r) for r in records], image_root=os.path.abspath(image_root),
                       compute=compute)


def fill_to_end(writer: CacheWriter, model: FrozenEncoder, batches: Iterator[tuple], batch_size: int,
                dev: torch.device, bar: tqdm) -> tuple[dict[int, str], np.ndarray]:
    """``fill``, then, when no row is left pending, record the image set the file now holds;
    ({bad row: error}, the rows' status [N])."""
    bad = fill(writer, model, batches, batch_size, dev, bar)
    status = writer.status_array()
    if not (status == hdf5.PENDING).any():
        writer.record_image_set(writer.spec.image_set)
    return bad, status


def _in_row_order(batch: tuple) -> tuple:
    """The batch with its rows increasing, as h5py writes them (a tar's members come in its own order)."""
    rows, images, errors, digests, sizes, mtimes = batch
    order = torch.argsort(rows)
    if bool((order == torch.arange(len(rows))).all()):
        return batch
    at = order.tolist()
    return rows[order], images[order], [errors[i] for i in at], [digests[i] for i in at], sizes[order], mtimes[order]


Encoded = tuple[np.ndarray, np.ndarray, "np.ndarray | None", list, np.ndarray, dict, np.ndarray]
# rows [b], features [b, L, D], pooled [b, E], digests [b], stats [b, 2], {bad row: error}, bad rows' stats [k, 2]


def _encode(model: FrozenEncoder, batch: tuple, dev: torch.device, batch_size: int) -> Encoded:
    rows, images, errors, digests, sizes, mtimes = batch
    ok = np.array([e == "" for e in errors])
    rows = rows.numpy()
    stats = np.stack([sizes.numpy(), mtimes.numpy()], axis=1).astype(np.int64)  # [B, 2]
    failed = {int(r): e for r, e, good in zip(rows, errors, ok) if not good}
    bad_stats = stats[~ok]  # rows arrive sorted, so these follow sorted(failed)
    good_digests = [d for d, good in zip(digests, ok) if good]
    if not ok.any():
        return rows[:0], np.empty(0), None, [], stats[:0], failed, bad_stats
    good = images if ok.all() else images[torch.from_numpy(ok)]  # [b, 3, S, S]; the mask would copy every batch
    tokens, pooled = encode_images(model, good, dev, batch_size)  # [b, L, D], [b, E] or None
    pooled = pooled.float().cpu().numpy() if pooled is not None else None  # rounded to the cache dtype when written
    return rows[ok], tokens.float().cpu().numpy(), pooled, good_digests, stats[ok], failed, bad_stats
