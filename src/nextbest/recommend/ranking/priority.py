"""Priority order: the generators' lists one after another, with reserved shares.

A generator with a `share` gets up to `round(n * share)` slots right after the first items of
the others: with the session model first and items new since training at a share of 0.2, a
list of 10 shows the model's best 8, then 2 new items, then the model's next ones. This is
how nextbest served before placements existed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nextbest.recommend.candidates import Candidates
from nextbest.recommend.context import Context


@dataclass(frozen=True)
class PriorityRanker:
    shares: Sequence[float | None] = ()  # per generator (placement order); None: no quota

    def rank(self, ctx: Context, candidates: Candidates) -> Candidates:
        if not len(candidates):
            return candidates
        group = candidates.features["generator"].astype(np.int64)
        shares = [s for s in self.shares]
        quota = np.array([s is not None for s in shares] + [False], dtype=bool)
        in_quota = quota[np.minimum(group, len(shares))]
        free = np.flatnonzero(~in_quota)  # merged order = generator order, then each list's
        reserved_parts = []
        for g, share in enumerate(shares):
            if share is not None:
                members = np.flatnonzero(group == g)
                reserved_parts.append(members[: round(ctx.n * share)])
        reserved = np.concatenate(reserved_parts) if reserved_parts else np.zeros(0, np.int64)
        head = max(0, ctx.n - len(reserved))
        rest_quota = np.setdiff1d(np.flatnonzero(in_quota), reserved, assume_unique=True)
        order = np.concatenate([free[:head], reserved, free[head:], rest_quota])
        ranked = candidates.take(order)
        return ranked.with_scores(np.arange(len(order), 0, -1, dtype=np.float64))
