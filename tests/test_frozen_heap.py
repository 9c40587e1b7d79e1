"""The collector stays off the heap a hot loop inherited (pipeline/frozen_heap.py)."""

from __future__ import annotations

import gc

import torch
from torch.utils.data import DataLoader, Dataset

import pipeline.extract.images as extract_images
import pipeline.extract.loop as extract_loop
from pipeline.data.manifest import Manifest
from pipeline.extract import extract
from pipeline.frozen_heap import freeze_inherited_heap, frozen_heap


class FreezeCounts(Dataset):
    """Each item is the number of frozen objects in the process that makes it."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> int:
        return gc.get_freeze_count()


def test_a_block_freezes_the_heap_it_started_with_and_thaws_it_after():
    assert gc.get_freeze_count() == 0
    older = [object() for _ in range(10)]
    with frozen_heap():
        frozen = gc.get_freeze_count()
        assert frozen > len(older)
        newer = [[] for _ in range(10)]
        assert gc.get_freeze_count() == frozen  # what the block allocates is collected as usual
    assert gc.get_freeze_count() == 0 and len(newer) == 10


def test_a_heap_the_caller_froze_or_a_collector_turned_off_is_left_as_it_is():
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with frozen_heap():
            pass
        assert gc.get_freeze_count() == frozen  # not thawed: the caller froze it
    finally:
        gc.unfreeze()
    gc.disable()
    try:
        with frozen_heap():
            assert gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_a_worker_freezes_what_it_inherited():
    counts = torch.cat(list(DataLoader(FreezeCounts(), num_workers=1, worker_init_fn=freeze_inherited_heap)))
    assert (counts > 1000).all()  # torch alone is hundreds of thousands of objects
    assert torch.cat(list(DataLoader(FreezeCounts(), num_workers=1))).eq(0).all()  # the parent's heap is not frozen


def test_extraction_encodes_and_decodes_with_the_heap_frozen_and_thaws_it_after(tiny_set, tmp_path, monkeypatch):
    manifest, _ = tiny_set
    seen = []
    encode, decode = extract_loop._encode, extract_images.decode_image
    in_workers = tmp_path / "worker_freeze_counts.txt"

    def counting_encode(*args, **kwargs):
        seen.append(gc.get_freeze_count())
        return encode(*args, **kwargs)

    def counting_decode(*args, **kwargs):  # runs in the forked decoding worker
        with in_workers.open("a") as f:
            f.write(f"{gc.get_freeze_count()}\n")
        return decode(*args, **kwargs)

    monkeypatch.setattr(extract_loop, "_encode", counting_encode)
    monkeypatch.setattr(extract_images, "decode_image", counting_decode)
    extract(Manifest.load(manifest), "tiny-cnn", cache_dir=tmp_path / "cache", workers=1, progress=False)
    assert seen and min(seen) > 1000
    worker_counts = [int(n) for n in in_workers.read_text().split()]
    assert worker_counts and min(worker_counts) > 1000  # forked within the frozen block
    assert gc.get_freeze_count() == 0
