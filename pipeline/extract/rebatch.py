"""Full batches from the decoding workers' output, whichever worker each image came from.

Every batch is encoded as a full one (``encode_images``' ``pad_to``), so a short batch costs a
full forward pass. A map-style loader (image files) has one short batch at most, its last; but
each worker of an iterable one (img2dataset tars, whole tars per worker) ends with its own short
batch: two workers over four 100-image tars in batches of 32 ran 14 batches, 48 of their 448
images padding (11 % of the forward work). Joining the short batches as they arrive leaves one
short batch per run again: 13 batches, 16 images padding.
"""

from __future__ import annotations

from typing import Iterator

import torch

Batch = tuple  # (rows [B], images [B, 3, S, S], errors [B], digests [B], sizes [B], mtimes [B]), as collated


def full_batches(batches: Iterator[Batch], batch_size: int) -> Iterator[Batch]:
    """The images of ``batches`` in batches of ``batch_size``, the last one shorter; a full batch
    passes through untouched (no copy), short ones are held and joined with the next."""
    held: list[Batch] = []
    count = 0
    for batch in batches:
        if not held and len(batch[0]) == batch_size:
            yield batch
            continue
        held.append(batch)
        count += len(batch[0])
        while count >= batch_size:
            joined = _join(held)
            yield _take(joined, slice(0, batch_size))
            held = [_take(joined, slice(batch_size, None))] if count > batch_size else []
            count -= batch_size
    if count:
        yield _join(held)


def _join(batches: list[Batch]) -> Batch:
    if len(batches) == 1:
        return batches[0]
    return tuple(torch.cat(parts) if isinstance(parts[0], torch.Tensor) else [x for part in parts for x in part]
                 for parts in zip(*batches))


def _take(batch: Batch, part: slice) -> Batch:
    return tuple(field[part] for field in batch)
