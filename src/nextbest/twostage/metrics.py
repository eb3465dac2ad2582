"""Click-prediction quality of a ranker: AUC over all rows, and gAUC (the AUC within each
session, averaged with the session's rows as weight, over sessions with both a positive and a
negative row), as the CTR literature reports them."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN without both classes."""
    labels = np.asarray(labels) > 0.5
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def gauc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float:
    """Row-weighted mean of the per-group AUC, over groups with both classes."""
    labels = np.asarray(labels) > 0.5
    order = np.argsort(groups, kind="stable")
    groups, labels, scores = groups[order], labels[order], np.asarray(scores)[order]
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    ends = np.r_[starts[1:], len(groups)]
    total, weight = 0.0, 0
    for start, end in zip(starts, ends, strict=True):
        part = labels[start:end]
        if part.all() or not part.any():
            continue
        total += auc(part, scores[start:end]) * (end - start)
        weight += end - start
    return total / weight if weight else float("nan")
