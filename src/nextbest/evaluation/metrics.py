"""Rank-based metrics of the next-event protocol, averaged over cases (events).

The rank of the true item is 1 + #(items scoring higher) + a share of the other items scoring
exactly the same, by tie policy:

* ``conservative`` (default): all of them (the target ranks below every equal item), so a model
  that gives many items the same score cannot gain from luck;
* ``standard``: none of them (optimistic);
* ``median``: half of them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

TiePolicy = Literal["conservative", "standard", "median"]
TIE_POLICIES: tuple[TiePolicy, ...] = ("conservative", "standard", "median")


def target_ranks(scores: np.ndarray, targets: np.ndarray, ties: TiePolicy) -> np.ndarray:
    """Ranks [B] (float64, 1 = best) of `targets` [B] within `scores` [B, n_items].

    NumPy rather than torch here: counting a boolean mask is several times faster in NumPy on
    a CPU, and this is the evaluator's hot loop.
    """
    if ties not in TIE_POLICIES:
        raise ValueError(f"ties must be one of {TIE_POLICIES}, not {ties!r}")
    target_scores = np.take_along_axis(scores, targets.reshape(-1, 1), axis=1)  # [B, 1]
    if np.isnan(target_scores).any():
        raise ValueError("the model scored a target item as NaN")
    higher: np.ndarray = (scores > target_scores).sum(axis=1).astype(np.float64)  # [B]
    if ties == "standard":
        return higher + 1
    equal_others: np.ndarray = (scores == target_scores).sum(axis=1).astype(np.float64) - 1
    share = 1.0 if ties == "conservative" else 0.5
    ranks: np.ndarray = higher + share * equal_others + 1
    return ranks


def recall_at(ranks: np.ndarray, k: int) -> float:
    """Share of cases whose target ranks within the top k."""
    return float(np.mean(ranks <= k)) if len(ranks) else 0.0


def mrr_at(ranks: np.ndarray, k: int) -> float:
    """Mean reciprocal rank, counting 0 for a target ranked beyond k."""
    if not len(ranks):
        return 0.0
    return float(np.mean(np.where(ranks <= k, 1.0 / ranks, 0.0)))


def ndcg_at(ranks: np.ndarray, k: int) -> float:
    """NDCG with one relevant item: 1 / log2(rank + 1) within the top k, else 0."""
    if not len(ranks):
        return 0.0
    return float(np.mean(np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)))
