"""The multi-label tagging figures of image-annotation papers (seed 004, §4.2, eq. 4.1-4.2).

For 0/1 label matrices ``predicted`` and ``truth`` of N images by C classes:

* C-P / C-R: the mean over classes of correct_j / predicted_j and of correct_j / truth_j;
* C-F1: the harmonic mean of C-P and C-R. This is the multi-label literature's CF1 and the seed's
  formula, NOT scikit-learn's macro F1 (``f1_score(average="macro")`` averages the per-class F1s,
  which is a different, usually lower, number);
* O-P / O-R / O-F1: the same pooled over every (image, class) cell, i.e. sklearn's micro figures;
* H-F1: the harmonic mean of C-F1 and O-F1, one number that weighs rare classes (which dominate
  the C figures) and frequent ones (which dominate the O figures) alike.

Zero division follows sklearn's ``zero_division=0`` exactly, so the figures can be checked against it:
a class never predicted has precision 0, a class with no true image has recall 0, and an F1 whose
P + R is 0 is 0. Every one of the C columns counts in the class means, including classes absent
from the truth of the evaluated split: such a class adds a 0 to C-R (and to C-P, since nothing
predicted for it can be correct), so C-P and C-R on a split missing some classes are lower than on
the classes it has. Pass only the columns the split contains if that is the question.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import CapcacheError

_KEYS = {"c_p": "C-P", "c_r": "C-R", "c_f1": "C-F1", "o_p": "O-P", "o_r": "O-R", "o_f1": "O-F1", "h_f1": "H-F1"}


@dataclass(frozen=True)
class TaggingScores:
    """Fractions in 0..1."""
    c_p: float
    c_r: float
    c_f1: float
    o_p: float
    o_r: float
    o_f1: float
    h_f1: float

    def to_dict(self) -> dict[str, float]:
        """The figures under the papers' names ("C-P", .., "H-F1")."""
        return {name: getattr(self, field) for field, name in _KEYS.items()}

    def percent(self) -> dict[str, float]:
        """``to_dict`` in percent, to 2 decimals, as tagging tables print them."""
        return {name: round(100 * value, 2) for name, value in self.to_dict().items()}


def tagging_scores(predicted: np.ndarray, truth: np.ndarray) -> TaggingScores:
    """[N, C] 0/1 predicted labels against [N, C] 0/1 true labels -> the seven figures."""
    pred = as_labels(predicted, "predicted labels")  # [N, C] bool
    true = as_labels(truth, "true labels")  # [N, C] bool
    if pred.shape != true.shape:
        raise CapcacheError(f"predicted labels have shape {pred.shape} but true labels {true.shape}")
    correct = (pred & true).sum(axis=0, dtype=np.float64)  # [C]
    guessed = pred.sum(axis=0, dtype=np.float64)  # [C]
    present = true.sum(axis=0, dtype=np.float64)  # [C]
    c_p = float(_ratio(correct, guessed).mean())
    c_r = float(_ratio(correct, present).mean())
    o_p = float(_ratio(correct.sum(), guessed.sum()))
    o_r = float(_ratio(correct.sum(), present.sum()))
    c_f1, o_f1 = _harmonic(c_p, c_r), _harmonic(o_p, o_r)
    return TaggingScores(c_p=c_p, c_r=c_r, c_f1=c_f1, o_p=o_p, o_r=o_r, o_f1=o_f1, h_f1=_harmonic(c_f1, o_f1))


def as_labels(labels: np.ndarray, what: str) -> np.ndarray:
    """A [N, C] matrix of 0/1 (or bools) -> the same as bools; anything else is the caller's error."""
    array = np.asarray(labels)
    if array.ndim != 2:
        raise CapcacheError(f"{what} must be a 2-D [images, classes] array; got {array.ndim}-D shape {array.shape}")
    if array.shape[1] == 0:
        raise CapcacheError(f"{what} have no classes (shape {array.shape})")
    if not np.isin(array, (0, 1)).all():
        raise CapcacheError(f"{what} must be 0 or 1; got values such as {_stray(array)}")
    return array.astype(bool)


def _stray(array: np.ndarray) -> object:
    """The first value of ``array`` that is neither 0 nor 1, for the error message."""
    return array[~np.isin(array, (0, 1))][0].item()


def _ratio(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """part / whole elementwise, 0 where whole is 0 (sklearn's zero_division=0)."""
    part, whole = np.asarray(part, dtype=np.float64), np.asarray(whole, dtype=np.float64)
    return np.divide(part, whole, out=np.zeros_like(part), where=whole > 0)


def _harmonic(a: float, b: float) -> float:
    """2ab / (a + b), 0 when both are 0."""
    return 2 * a * b / (a + b) if a + b > 0 else 0.0
