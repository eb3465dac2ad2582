"""The caller's own candidates (the search placement): item ids in the caller's order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.recommend.candidates import Candidates
from nextbest.recommend.context import Context


@dataclass(frozen=True)
class GivenItems:
    name: str = "search"

    def generate(self, ctx: Context, k: int) -> Candidates:
        rows = ctx.items.rows(list(dict.fromkeys(ctx.query.candidates)))[:k]
        scores = 1.0 / np.arange(1, len(rows) + 1)  # the caller's order
        return Candidates.of(rows, scores, self.name, "matches your search")
