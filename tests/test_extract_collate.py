"""A decoding worker's batch reaches the encoder as it runs it: channels_last, already in shared
memory (no copy on the way), equal to the stacked images."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import pipeline.extract.loop as loop
from pipeline.extract.loop import _channels_last_batch


class Items(Dataset):
    """Extraction items: (row, image [3, 5, 7], error, digest, size, mtime_ns)."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> tuple:
        return i, _image(i), "" if i != 2 else "OSError: gone", f"d{i}", 100 + i, 1000 + i


def _image(i: int) -> torch.Tensor:
    return torch.randn(3, 5, 7, generator=torch.Generator().manual_seed(i))


def _check(batch: tuple) -> None:
    rows, images, errors, digests, sizes, mtimes = batch
    assert images.is_contiguous(memory_format=torch.channels_last) and images.shape == (4, 3, 5, 7)
    torch.testing.assert_close(images, torch.stack([_image(i) for i in range(4)]), rtol=0, atol=0)
    assert rows.tolist() == [0, 1, 2, 3] and list(errors) == ["", "", "OSError: gone", ""]
    assert list(digests) == ["d0", "d1", "d2", "d3"] and sizes.tolist() == [100, 101, 102, 103]
    assert mtimes.tolist() == [1000, 1001, 1002, 1003]


@pytest.mark.parametrize("in_worker", [False, True])
def test_the_batch_is_made_channels_last_and_in_a_worker_straight_into_shared_memory(in_worker, monkeypatch):
    monkeypatch.setattr(loop, "get_worker_info", lambda: object() if in_worker else None)
    batch = _channels_last_batch([Items()[i] for i in range(4)])
    _check(batch)
    assert batch[1].is_shared() == in_worker  # so the queue to the main process has nothing to copy


@pytest.mark.parametrize("workers", [0, 1])
def test_batches_through_the_loader(workers):
    _check(next(iter(DataLoader(Items(), batch_size=4, num_workers=workers, collate_fn=_channels_last_batch))))
