"""A filter expression as a pipeline rule (the language: `nextbest.recommend.rules.filters`).

The placement's named filters and the request's `filter=` run alike; their `$parameters`
come from the request's `filter_params`.
"""

from __future__ import annotations

from dataclasses import dataclass

from nextbest.recommend.candidates import Candidates
from nextbest.recommend.context import Context
from nextbest.recommend.rules.filters import CompiledFilter, Interactions


@dataclass(frozen=True)
class FilterRule:
    name: str
    compiled: CompiledFilter

    def apply(self, ctx: Context, candidates: Candidates) -> Candidates:
        if not len(candidates):
            return candidates
        uses = self.compiled.uses_interactions
        interactions = ctx.interactions if uses else Interactions.empty()
        keep = self.compiled.keep(
            ctx.items, candidates.rows, interactions, ctx.now, ctx.query.filter_params
        )
        return candidates if keep.all() else candidates.take(keep)
