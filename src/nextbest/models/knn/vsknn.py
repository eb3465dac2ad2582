"""V-SKNN: vector-multiplication session kNN (Ludewig and Jannach, 2018).

For the current session s = (s_1 .. s_n):

* position weights: item s_p weighs p / n (`div`; later items weigh more). The list is walked in
  order, so a repeated item keeps the weight of its *later* position, while n counts repeats;
* similarity to a candidate c (a set): the sum of the weights of s's distinct items that are in
  c, over sqrt(sum of their squared weights over all distinct items of s) * sqrt(|c|);
* candidates: the `sample_size` most recent sessions sharing an item with s; those with
  similarity > 0 are kept, then the `k` most similar;
* scoring: each distinct item i of neighbour c gets sim(s, c) * (1 + idf(i) * idf_weight) / d,
  where d = 1 + the number of events of s after its most recent event whose item is in c
  (`div`, d = 1 when the last item is shared).

Anchor defaults: k = 100, sample_size = 1000, cosine, `div` weighting and scoring, idf_weight = 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from nextbest.models.knn.base import (
    SessionKNN,
    check_choice,
    check_positive_int,
    cosine,
    latest_shared,
    neighbours,
)
from nextbest.models.knn.index import candidates, last_positions, top_k


@dataclass(frozen=True)
class VSKNNConfig:
    k: int = 100  # neighbours that vote
    sample_size: int = 1000  # most recent candidates considered; 0 = all
    similarity: Literal["cosine", "dot"] = "cosine"  # dot: the weighted overlap, unnormalised
    weighting: Literal["div", "same"] = "div"  # position weight p / n, or 1 for every item
    scoring: Literal["div", "same"] = "div"  # neighbour's vote divided by d, or not
    idf_weight: float = 1.0  # votes times (1 + idf(i) * idf_weight); 0 switches idf off

    def __post_init__(self) -> None:
        check_positive_int("k", self.k)
        check_positive_int("sample_size", self.sample_size, allow_zero=True)
        check_choice("similarity", self.similarity, ("cosine", "dot"))
        check_choice("weighting", self.weighting, ("div", "same"))
        check_choice("scoring", self.scoring, ("div", "same"))
        if not isinstance(self.idf_weight, int | float) or not self.idf_weight >= 0:
            raise ValueError(f"idf_weight must be a number >= 0, not {self.idf_weight!r}")


class VSKNN(SessionKNN[VSKNNConfig]):
    name = "vsknn"
    config_class = VSKNNConfig

    def votes(self, sequence: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        index, config = self.fitted_index(), self.config
        n = len(sequence)
        items, last = last_positions(sequence)  # [u], [u] 1-based
        weights = last / n if config.weighting == "div" else np.ones(len(items))
        found = candidates(index, items, config.sample_size)
        similarity = cosine(index, found, weights, normalise=config.similarity == "cosine")
        near = neighbours(index, found, top_k(similarity, config.k), similarity)
        votes = near.similarity[near.owner] * (1.0 + index.idf[near.items] * config.idf_weight)
        if config.scoring == "div":
            latest = latest_shared(found, last[found.group])[near.chosen]  # [k'] 1-based
            votes = votes / (n - latest + 1)[near.owner]
        return near.items, votes
