"""SKNN: session-based k-nearest neighbours with a binary cosine (Ludewig and Jannach, 2018).

The current session and every candidate are sets of items; similarity = |s & c| /
sqrt(|s| * |c|). Of the `sample_size` most recent candidates (sessions sharing an item with the
session), the `k` most similar vote: every item of a neighbour gets the neighbour's similarity.

Defaults: k = 100, sample_size = 500.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.models.knn.base import SessionKNN, check_positive_int, cosine, neighbours
from nextbest.models.knn.index import candidates, top_k


@dataclass(frozen=True)
class SKNNConfig:
    k: int = 100  # neighbours that vote
    sample_size: int = 500  # most recent candidates considered; 0 = all

    def __post_init__(self) -> None:
        check_positive_int("k", self.k)
        check_positive_int("sample_size", self.sample_size, allow_zero=True)


class SKNN(SessionKNN[SKNNConfig]):
    name = "sknn"
    config_class = SKNNConfig

    def votes(self, sequence: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        index = self.fitted_index()
        items = np.unique(sequence)  # [u] the session as a set
        found = candidates(index, items, self.config.sample_size)
        similarity = cosine(index, found, np.ones(len(items)))  # [S]
        near = neighbours(index, found, top_k(similarity, self.config.k), similarity)
        return near.items, near.similarity[near.owner]
