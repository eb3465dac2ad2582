"""Personal re-rank: the candidates' order fused with the session model's order of them.

For the search placement: the caller's relevance order stays one signal, the session model's
scores of the same items (only those rows are scored) the other, fused by reciprocal rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.recommend.candidates import Candidates
from nextbest.recommend.context import Context
from nextbest.recommend.ranking.fusion import FusionRanker


@dataclass(frozen=True)
class PersonalRanker:
    model_weight: float = 1.0
    offset: float = 60.0

    def rank(self, ctx: Context, candidates: Candidates) -> Candidates:
        model, state = ctx.model, ctx.state
        if not len(candidates) or model is None or state is None:
            return FusionRanker(offset=self.offset).rank(ctx, candidates)
        known = candidates.rows < ctx.items.n_model
        ranks = np.full(len(candidates), np.nan)
        if known.any():
            scores = model.score.score_rows(state, candidates.rows[known])
            order = np.argsort(-scores, kind="stable")
            model_rank = np.empty(len(order))
            model_rank[order] = np.arange(1, len(order) + 1)
            ranks[known] = model_rank
        with_model = candidates.with_features(**{"personal.rank": ranks})
        weights = {"personal": self.model_weight}
        return FusionRanker(weights, self.offset).rank(ctx, with_model)
