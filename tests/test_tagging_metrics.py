"""Tagging figures: parity with scikit-learn, cases counted by hand, the seed's indicator examples."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import CapcacheError
from pipeline.evaluation.tagging.indicators import DEFAULT_GRID, best_threshold, threshold, top_k
from pipeline.evaluation.tagging.metrics import TaggingScores, tagging_scores


@pytest.fixture
def sk():
    return pytest.importorskip("sklearn.metrics", reason="scikit-learn is needed for the parity checks")


def _random_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """[N, C] predicted and true labels with a class never predicted and a class with no true image."""
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(1, 200)), int(rng.integers(2, 40))
    pred = (rng.random((n, c)) < rng.uniform(0.02, 0.7)).astype(np.int64)
    truth = (rng.random((n, c)) < rng.uniform(0.02, 0.7)).astype(np.int64)
    pred[:, rng.integers(c)] = 0
    truth[:, rng.integers(c)] = 0
    return pred, truth


@pytest.mark.parametrize("seed", range(80))
def test_figures_equal_sklearn_macro_and_micro(sk, seed):
    pred, truth = _random_case(seed)
    got = tagging_scores(pred, truth)
    kw = dict(zero_division=0)
    macro_p = sk.precision_score(truth, pred, average="macro", **kw)
    macro_r = sk.recall_score(truth, pred, average="macro", **kw)
    assert got.c_p == pytest.approx(macro_p, abs=1e-9)
    assert got.c_r == pytest.approx(macro_r, abs=1e-9)
    harmonic = 2 * macro_p * macro_r / (macro_p + macro_r) if macro_p + macro_r else 0.0
    assert got.c_f1 == pytest.approx(harmonic, abs=1e-9)
    assert got.o_p == pytest.approx(sk.precision_score(truth, pred, average="micro", **kw), abs=1e-9)
    assert got.o_r == pytest.approx(sk.recall_score(truth, pred, average="micro", **kw), abs=1e-9)
    assert got.o_f1 == pytest.approx(sk.f1_score(truth, pred, average="micro", **kw), abs=1e-9)
    expected_h = 2 * got.c_f1 * got.o_f1 / (got.c_f1 + got.o_f1) if got.c_f1 + got.o_f1 else 0.0
    assert got.h_f1 == pytest.approx(expected_h, abs=1e-12)


def test_all_zero_and_bool_inputs_match_sklearn(sk):
    truth = np.array([[True, False, False], [False, False, True]])
    nothing = np.zeros((2, 3), dtype=bool)
    assert tagging_scores(nothing, truth) == TaggingScores(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert tagging_scores(truth, truth).c_r == pytest.approx(
        sk.recall_score(truth, truth, average="macro", zero_division=0))  # 2/3: class 1 has no image


# truth / pred of three images, three classes, counted below
TRUTH = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]])
PRED = np.array([[1, 1, 0], [0, 1, 0], [0, 1, 1]])


def test_figures_counted_by_hand():
    # class 0: 1 predicted, 2 true, 1 correct -> P 1,   R 1/2
    # class 1: 3 predicted, 2 true, 2 correct -> P 2/3, R 1
    # class 2: 1 predicted, 1 true, 0 correct -> P 0,   R 0
    # overall: 3 correct of 5 predicted, of 5 true
    got = tagging_scores(PRED, TRUTH)
    c_p, c_r = 5 / 9, 1 / 2
    c_f1 = 2 * c_p * c_r / (c_p + c_r)  # 10/19
    assert c_f1 == pytest.approx(10 / 19)
    assert got.to_dict() == pytest.approx({"C-P": c_p, "C-R": c_r, "C-F1": 10 / 19, "O-P": 0.6, "O-R": 0.6,
                                           "O-F1": 0.6, "H-F1": 60 / 107})  # 2 (10/19) 0.6 / (10/19 + 0.6)
    assert got.percent() == {"C-P": 55.56, "C-R": 50.0, "C-F1": 52.63, "O-P": 60.0, "O-R": 60.0, "O-F1": 60.0,
                             "H-F1": 56.07}


def test_c_f1_is_not_the_mean_of_per_class_f1s(sk):
    # per-class F1s 2/3, 4/5, 0: sklearn's macro F1 is their mean, 22/45, not the harmonic mean of C-P and C-R
    assert sk.f1_score(TRUTH, PRED, average="macro", zero_division=0) == pytest.approx(22 / 45)
    assert tagging_scores(PRED, TRUTH).c_f1 == pytest.approx(10 / 19)


def test_perfect_labels_score_one():
    assert tagging_scores(TRUTH, TRUTH) == TaggingScores(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)


@pytest.mark.parametrize("pred, truth, message", [
    (np.zeros((2, 3)), np.zeros((3, 2)), "shape"),
    (np.array([[0, 2]]), np.array([[0, 1]]), "0 or 1"),
    (np.array([[0, 1]]), np.array([[0.5, 1]]), "0 or 1"),
    (np.array([[0, np.nan]]), np.array([[0, 1]]), "0 or 1"),
    (np.array([0, 1]), np.array([0, 1]), "2-D"),
    (np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), "2-D"),
    (np.zeros((2, 0)), np.zeros((2, 0)), "no classes"),
])
def test_bad_labels_are_refused_in_one_line(pred, truth, message):
    with pytest.raises(CapcacheError, match=message) as caught:
        tagging_scores(pred, truth)
    assert "\n" not in str(caught.value)


def test_seed_examples():
    assert top_k(np.array([[0.9, 0.6, 0.1, 0.4, 0.6]]), 4).tolist() == [[1, 1, 0, 1, 1]]
    assert top_k(np.array([[0.8, 0.9, 0.1, 0.5, 0.2]]), 3).tolist() == [[1, 1, 0, 1, 0]]
    assert threshold(np.array([[0.9, 0.6, 0.1, 0.4, 0.6]]), 0.5).tolist() == [[1, 1, 0, 0, 1]]


def test_threshold_is_strict():
    assert threshold(np.array([[0.5, 0.50001, 0.49]]), 0.5).tolist() == [[0, 1, 0]]


def test_per_image_counts_are_clipped_to_the_classes():
    probs = np.array([[0.1, 0.4, 0.3, 0.2]] * 4)
    assert top_k(probs, np.array([0, 1, 3, 9])).tolist() == [
        [0, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 1], [1, 1, 1, 1]]
    assert top_k(probs[:1], -2).tolist() == [[0, 0, 0, 0]]
    assert top_k(probs[:2], np.array([2.0, 1.0])).tolist() == [[0, 1, 1, 0], [0, 1, 0, 0]]  # whole floats pass


def test_ties_go_to_the_lower_class_index():
    assert top_k(np.array([[0.5, 0.5, 0.5, 0.5]]), 2).tolist() == [[1, 1, 0, 0]]
    assert top_k(np.array([[0.2, 0.7, 0.1, 0.7], [0.0, 0.3, 0.3, 0.3]]), 1).tolist() == [[0, 1, 0, 0], [0, 1, 0, 0]]


def test_top_k_labels_the_k_highest_of_random_rows():
    rng = np.random.default_rng(7)
    probs = rng.random((50, 12))
    counts = rng.integers(0, 13, size=50)
    labels = top_k(probs, counts)
    assert (labels.sum(axis=1) == counts).all()
    for row, lab in zip(probs, labels):
        if 0 < lab.sum() < lab.size:
            assert row[lab == 1].min() > row[lab == 0].max()


@pytest.mark.parametrize("k, message", [(np.array([1, 2]), "one per image"), (2.5, "whole numbers"),
                                        (np.array([1, np.nan, 2]), "whole numbers")])
def test_bad_counts_are_refused(k, message):
    with pytest.raises(CapcacheError, match=message):
        top_k(np.full((3, 4), 0.5), k)


def test_bad_probabilities_are_refused():
    with pytest.raises(CapcacheError, match="finite"):
        threshold(np.array([[0.1, np.nan]]), 0.5)
    with pytest.raises(CapcacheError, match="2-D"):
        top_k(np.array([0.1, 0.2]), 1)


@pytest.mark.parametrize("seed", range(10))
def test_best_threshold_matches_a_brute_force_search(seed):
    rng = np.random.default_rng(100 + seed)
    truth = (rng.random((60, 8)) < 0.3).astype(np.int64)
    probs = np.clip(0.6 * truth + 0.5 * rng.random((60, 8)), 0, 1)  # [60, 8] informative but noisy
    best_alpha, best_h = None, -1.0
    for alpha in np.arange(1, 20) / 20:
        h = tagging_scores((probs > alpha).astype(int), truth).h_f1
        if h > best_h:
            best_alpha, best_h = alpha, h
    alpha, scores = best_threshold(probs, truth)
    assert alpha == best_alpha
    assert scores == tagging_scores(threshold(probs, alpha), truth)


def test_best_threshold_prefers_the_smaller_alpha_on_equal_h_f1():
    probs = np.array([[0.3, 0.8], [0.8, 0.3]])
    truth = np.array([[0, 1], [1, 0]])
    # every alpha in [0.30, 0.80) labels exactly the 0.8s: perfect; 0.25 also labels the 0.3s
    alpha, scores = best_threshold(probs, truth)
    assert (alpha, scores.h_f1) == (0.3, 1.0)
    assert best_threshold(probs, truth, grid=[0.7, 0.4, 0.2])[0] == 0.4


def test_default_grid_and_bad_grids():
    assert DEFAULT_GRID.tolist() == [round(0.05 * i, 2) for i in range(1, 20)]
    with pytest.raises(CapcacheError, match="grid"):
        best_threshold(np.full((2, 2), 0.5), np.eye(2), grid=[])
    with pytest.raises(CapcacheError, match="shape"):
        best_threshold(np.full((2, 3), 0.5), np.eye(2))
