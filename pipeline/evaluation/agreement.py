"""Rank agreement between a metric and human judgements.

Metric papers report Kendall's tau-c (Stuart's tau-c) against Flickr8k's expert annotations:
the human scores are a few levels (1-4) with massive ties while metric scores are nearly all
distinct, and tau-c, unlike tau-a and tau-b, can still reach +-1 for such a non-square table.
scipy has it, but scipy is not a capcache dependency, so this is numpy with the same conventions as
``scipy.stats.kendalltau(x, y, variant="c")``: NaN when either side is constant or holds a NaN.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def kendall_tau_c(x: Sequence[float], y: Sequence[float]) -> float:
    """2 (P - Q) / (n^2 (m - 1) / m): P and Q count concordant and discordant pairs, m is the
    smaller number of distinct values in x or y. O(n log n), so that ~10^5 judgements stay fast."""
    xs, ys = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if xs.shape != ys.shape:
        raise ValueError(f"x and y differ in length ({xs.size} vs {ys.size})")
    if np.isnan(xs).any() or np.isnan(ys).any():
        return math.nan
    m = min(np.unique(xs).size, np.unique(ys).size)
    if m < 2:
        return math.nan
    return 2 * _concordant_minus_discordant(xs, ys) / (xs.size ** 2 * (m - 1) / m)


def _concordant_minus_discordant(x: np.ndarray, y: np.ndarray) -> int:
    """Untied pairs are all pairs less those tied in x or in y (tied in both counted once); of
    those, the discordant ones are the strict inversions of y once sorted by (x, y)."""
    n = x.size
    untied = n * (n - 1) // 2 - _tied_pairs(x) - _tied_pairs(y) + _tied_pairs(np.stack([x, y], axis=1))
    return untied - 2 * _count_inversions(y[np.lexsort((y, x))])


def _tied_pairs(values: np.ndarray) -> int:
    counts = np.unique(values, axis=0, return_counts=True)[1].astype(np.int64)
    return int((counts * (counts - 1) // 2).sum())


def _count_inversions(values: np.ndarray) -> int:
    """Pairs i < j with values[i] > values[j], via a Fenwick tree over the values' dense ranks."""
    ranks = np.unique(values, return_inverse=True)[1] + 1
    tree = [0] * (int(ranks.max()) + 1)
    inversions = 0
    for seen, rank in enumerate(ranks.tolist()):
        i, not_greater = rank, 0
        while i:  # earlier values <= this one
            not_greater += tree[i]
            i &= i - 1
        inversions += seen - not_greater
        i = rank
        while i < len(tree):
            tree[i] += 1
            i += i & -i
    return inversions
