"""Metric functions against hand-computed cases, ties included."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nextbest.evaluation.metrics import mrr_at, ndcg_at, recall_at, target_ranks

# Row 0: target (item 2) scores 0.5; one item higher (0.9), two others equal (0.5).
# Row 1: target (item 0) is the unique best.
# Row 2: every item scores 0: a model that knows nothing.
SCORES = np.array(
    [
        [0.9, 0.5, 0.5, 0.5, 0.1],
        [0.8, 0.2, 0.3, 0.1, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
    ],
    dtype=np.float32,
)
TARGETS = np.array([2, 0, 3])


def test_conservative_ties_rank_target_below_every_equal_item() -> None:
    ranks = target_ranks(SCORES, TARGETS, "conservative").tolist()
    assert ranks == [4.0, 1.0, 5.0]


def test_standard_ties_ignore_equal_items() -> None:
    assert target_ranks(SCORES, TARGETS, "standard").tolist() == [2.0, 1.0, 1.0]


def test_median_ties_count_half_of_the_equal_items() -> None:
    assert target_ranks(SCORES, TARGETS, "median").tolist() == [3.0, 1.0, 3.0]


def test_unknown_tie_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="ties"):
        target_ranks(SCORES, TARGETS, "optimistic")  # type: ignore[arg-type]


def test_nan_target_score_is_an_error() -> None:
    scores = SCORES.copy()
    scores[0, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(scores, TARGETS, "conservative")


def test_recall_mrr_ndcg_by_hand() -> None:
    ranks = np.array([4.0, 1.0, 5.0, 30.0])
    assert recall_at(ranks, 1) == pytest.approx(0.25)
    assert recall_at(ranks, 4) == pytest.approx(0.5)
    assert recall_at(ranks, 5) == pytest.approx(0.75)
    assert mrr_at(ranks, 4) == pytest.approx((1 / 4 + 1) / 4)
    assert mrr_at(ranks, 20) == pytest.approx((1 / 4 + 1 + 1 / 5) / 4)
    expected_ndcg = (1 / math.log2(5) + 1 / math.log2(2) + 1 / math.log2(6)) / 4
    assert ndcg_at(ranks, 20) == pytest.approx(expected_ndcg)


def test_fractional_median_rank_counts_within_cutoff_only_when_below_it() -> None:
    ranks = np.array([20.5, 20.0])
    assert recall_at(ranks, 20) == pytest.approx(0.5)
    assert mrr_at(ranks, 20) == pytest.approx(1 / 40)


def test_empty_ranks_give_zero() -> None:
    empty = np.zeros(0)
    assert recall_at(empty, 20) == 0.0
    assert mrr_at(empty, 20) == 0.0
    assert ndcg_at(empty, 20) == 0.0
