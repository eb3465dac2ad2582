"""Reciprocal-rank fusion: an item's score is the sum over generators of
`weight / (offset + rank)`, so an item proposed high by several generators comes first, and
no generator's score scale needs calibrating against another's (Cormack et al., 2009, with
their offset of 60)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from nextbest.recommend.candidates import Candidates
from nextbest.recommend.context import Context

RANK = ".rank"


@dataclass(frozen=True)
class FusionRanker:
    weights: Mapping[str, float] = field(default_factory=dict)  # generator -> weight (1)
    offset: float = 60.0

    def rank(self, ctx: Context, candidates: Candidates) -> Candidates:
        if not len(candidates):
            return candidates
        scores = np.zeros(len(candidates))
        for name, ranks in candidates.features.items():
            if name.endswith(RANK):
                weight = self.weights.get(name.removesuffix(RANK), 1.0)
                scores += np.where(np.isnan(ranks), 0.0, weight / (self.offset + ranks))
        return candidates.with_scores(scores).sorted()
