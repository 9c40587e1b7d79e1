"""Full batches from the decoding workers' output, whichever worker each image came from.

Every batch is encoded as a full one (``encode_images``' ``pad_to``), so a short batch costs a
full forward pass. A map-style loader (image files) has one short batch at most, its last; but
each worker of an iterable one (img2dataset tars, whole tars per worker) ends with its own short
batch: two workers over four 100-image tars in batches of 32 ran 14 batches, 48 of their 448
images padding (11 % of the forward work). Joining the short batches leaves one short batch per
run again: 13 batches, 16 images padding.

Full batches pass straight through, ahead of any short ones still held: holding them back behind
a short batch would copy every later batch (a worker that finishes first, the image files before
the tars) and lose the loader's pinned memory. The loop writes each batch by its rows, so the
order batches come in does not matter.
"""

from __future__ import annotations

from typing import Iterator

import torch

Batch = tuple  # (rows [B], images [B, 3, S, S], errors [B], digests [B], sizes [B], mtimes [B]), as collated


def full_batches(batches: Iterator[Batch], batch_size: int) -> Iterator[Batch]:
    """The images of ``batches`` in batches of ``batch_size``, the last one shorter: full batches
    untouched (no copy), short ones held and joined with each other."""
    held: list[Batch] = []
    count = 0
    for batch in batches:
        if len(batch[0]) == batch_size:
            yield batch
            continue
        held.append(batch)
        count += len(batch[0])
        if count >= batch_size:  # held batches are short, so this makes one full batch at most
            joined = _join(held)
            yield _take(joined, slice(0, batch_size))
            count -= batch_size
            held = [_take(joined, slice(batch_size, None))] if count else []
    if count:
        yield _join(held)


def _join(batches: list[Batch]) -> Batch:
    if len(batches) == 1:
        return batches[0]
    return tuple(torch.cat(parts) if isinstance(parts[0], torch.Tensor) else [x for part in parts for x in part]
                 for parts in zip(*batches))


def _take(batch: Batch, part: slice) -> Batch:
    return tuple(field[part] for field in batch)
