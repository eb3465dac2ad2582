"""The treadmill rule as a pipeline stage, from the rules learned at training
(`PurchaseRules`): after a purchase, the bought item's category (its substitutes) is held
back while its learned window lasts, and the categories bought after it (its complements) and
consumables due again are boosted.

A boosted candidate's score is multiplied by `1 + boost * weight` (weight in (0, 1], from the
complement's lift), so it climbs the list without pushing everything else out of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.recommend.candidates import Candidates
from nextbest.recommend.context import Context


@dataclass(frozen=True)
class AfterPurchaseRule:
    boost: float = 1.0

    def apply(self, ctx: Context, candidates: Candidates) -> Candidates:
        after = ctx.after_purchase
        if after is None or not len(candidates):
            return candidates
        items = ctx.items
        categories = items.category[candidates.rows]
        if after.held:
            held = np.array([c in after.held for c in categories], dtype=bool)
            if held.any():
                candidates, categories = candidates.take(~held), categories[~held]
        if after.boosted and self.boost > 0 and len(candidates):
            weights = np.array(
                [after.boosted[c][0] if c in after.boosted else 0.0 for c in categories]
            )
            if weights.any():
                scores = candidates.scores * (1.0 + self.boost * weights)
                return candidates.with_scores(scores).sorted()
        return candidates
