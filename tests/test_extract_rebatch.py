"""The decoding workers' short batches are joined into full ones before the encoder sees them."""

from __future__ import annotations

import torch

from pipeline.extract.rebatch import full_batches


def _batch(rows: list[int]) -> tuple:
    n = len(rows)  # (rows [n], images [n, 3, 2, 2], errors, digests, sizes [n], mtimes [n]) as collated
    images = torch.arange(n * 12, dtype=torch.float32).view(n, 3, 2, 2) + 100 * rows[0]
    return (torch.tensor(rows), images, [f"e{r}" for r in rows], [f"d{r}" for r in rows],
            torch.tensor(rows) * 10, torch.tensor(rows) * 100)


def _by_row(batches: list[tuple]) -> dict[int, tuple]:
    """row -> (image, error, digest, size, mtime): what travels with each row."""
    return {int(r): (b[1][i].tolist(), b[2][i], b[3][i], int(b[4][i]), int(b[5][i]))
            for b in batches for i, r in enumerate(b[0])}


def test_short_batches_are_joined_and_nothing_is_lost_or_mismatched():
    sizes = [3, 4, 2, 4, 1, 3, 2]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    given = [_batch(list(range(s, s + n))) for s, n in zip(starts, sizes)]
    got = list(full_batches(iter(given), 4))
    assert [len(b[0]) for b in got] == [4, 4, 4, 4, 3]  # 19 images: full batches, then the rest
    assert sum(len(b[0]) for b in got) == len(_by_row(got)) == 19  # every row exactly once
    assert _by_row(got) == _by_row(given)  # each row with its own image, error, digest and stats
    assert got[0] is given[1] and got[2] is given[3]  # full batches pass as they come, uncopied
    assert [b[0].tolist() for b in got] == [[3, 4, 5, 6], [0, 1, 2, 7], [9, 10, 11, 12], [8, 13, 14, 15],
                                            [16, 17, 18]]  # short ones joined in arrival order


def test_full_batches_pass_through_uncopied_even_while_a_short_one_is_held():
    short, full, tail = _batch([0, 1]), _batch([2, 3, 4, 5]), _batch([6])
    got = list(full_batches(iter([short, full, tail]), 4))
    assert got[0] is full and [b[0].tolist() for b in got[1:]] == [[0, 1, 6]]


def test_no_batches_give_none():
    assert list(full_batches(iter([]), 4)) == []
