"""The decoding workers' short batches are joined into full ones before the encoder sees them."""

from __future__ import annotations

import torch

from pipeline.extract.rebatch import full_batches


def _batch(rows: list[int]) -> tuple:
    n = len(rows)  # (rows [n], images [n, 3, 2, 2], errors, digests, sizes [n], mtimes [n]) as collated
    images = torch.arange(n * 12, dtype=torch.float32).view(n, 3, 2, 2) + 100 * rows[0]
    return (torch.tensor(rows), images, [f"e{r}" for r in rows], [f"d{r}" for r in rows],
            torch.tensor(rows) * 10, torch.tensor(rows) * 100)


def test_short_batches_are_joined_and_nothing_is_lost_or_reordered():
    sizes = [3, 4, 2, 4, 1, 5]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    given = [_batch(list(range(s, s + n))) for s, n in zip(starts, sizes)]
    got = list(full_batches(iter(given), 4))
    assert [len(b[0]) for b in got] == [4, 4, 4, 4, 3]  # 19 images: full batches, then the rest
    for field in (0, 1, 4, 5):
        assert torch.equal(torch.cat([b[field] for b in got]), torch.cat([b[field] for b in given]))
    for field in (2, 3):
        assert [x for b in got for x in b[field]] == [x for b in given for x in b[field]]


def test_a_full_batch_with_nothing_held_passes_through_uncopied():
    full = _batch([0, 1, 2, 3])
    got = list(full_batches(iter([full, _batch([4, 5])]), 4))
    assert got[0] is full and [len(b[0]) for b in got] == [4, 2]


def test_no_batches_give_none():
    assert list(full_batches(iter([]), 4)) == []
