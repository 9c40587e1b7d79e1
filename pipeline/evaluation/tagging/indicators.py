"""Indicator functions (seed 004, §3.6): [N, C] class probabilities -> [N, C] 0/1 labels.

The tagging figures need hard labels, and a classifier gives probabilities, so one of two rules
decides which classes an image gets:

* ``top_k``: its k most probable classes, k fixed (the seed uses 3 for models that do not predict
  how many labels an image has) or one count per image (the LQP head's prediction, rounded by the caller);
* ``threshold``: every class with probability above alpha, alpha chosen on val by ``best_threshold``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pipeline.errors import CapcacheError
from pipeline.evaluation.tagging.metrics import TaggingScores, as_labels, tagging_scores

DEFAULT_GRID = np.arange(1, 20) / 20  # 0.05, 0.10, .., 0.95 (k / 20, so no drift from summing 0.05)


def top_k(probs: np.ndarray, k: int | np.ndarray) -> np.ndarray:
    """1 for each row's k highest probabilities. ``k`` is one count for all rows or an [N] array of
    integer counts, clipped to [0, C] (a count of 0 labels nothing; a count past C labels everything).
    Equal probabilities go to the lower class index, so the labels never depend on sort internals."""
    scores = _as_probs(probs)  # [N, C]
    n, c = scores.shape
    counts = np.asarray(k, dtype=np.float64)
    counts = np.full(n, counts) if counts.ndim == 0 else counts  # [N]
    if counts.shape != (n,):
        raise CapcacheError(f"k must be one count or one per image ({n}); got shape {counts.shape}")
    fractional = ~np.isfinite(counts) | (counts != np.round(counts))  # [N]
    if fractional.any():
        raise CapcacheError(f"k must be whole numbers of labels (round LQP's output); got {counts[fractional][0]}")
    counts = np.clip(counts, 0, c).astype(np.int64)  # [N]
    order = np.argsort(-scores, axis=1, kind="stable")  # [N, C] classes best first, ties by index
    rank = np.argsort(order, axis=1)  # [N, C] each class's place in its row's order
    return (rank < counts[:, None]).astype(np.int64)


def threshold(probs: np.ndarray, alpha: float) -> np.ndarray:
    """1 where the probability is strictly above ``alpha`` (the seed's y_i > alpha)."""
    return (_as_probs(probs) > alpha).astype(np.int64)


def best_threshold(probs: np.ndarray, truth: np.ndarray,
                   grid: Sequence[float] | np.ndarray | None = None) -> tuple[float, TaggingScores]:
    """The alpha of ``grid`` (default 0.05..0.95 by 0.05) whose ``threshold`` labels score the highest
    H-F1 against ``truth``, and those scores. Meant for val: choosing alpha on the test split would
    report a tuned figure. On equal H-F1 the smaller alpha wins."""
    alphas = np.unique(np.asarray(DEFAULT_GRID if grid is None else grid, dtype=np.float64))  # sorted
    if alphas.size == 0 or not np.all(np.isfinite(alphas)):
        raise CapcacheError("the threshold grid must hold at least one finite alpha")
    scores, true = _as_probs(probs), as_labels(truth, "true labels")
    best: tuple[float, TaggingScores] | None = None
    for alpha in alphas:
        result = tagging_scores(threshold(scores, alpha), true)
        if best is None or result.h_f1 > best[1].h_f1:
            best = (float(alpha), result)
    return best


def _as_probs(probs: np.ndarray) -> np.ndarray:
    """A finite [N, C] float matrix, or the caller's error."""
    array = np.asarray(probs, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] == 0:
        raise CapcacheError(f"probabilities must be a 2-D [images, classes] array; got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise CapcacheError("probabilities must be finite; got NaN or infinity")
    return array
