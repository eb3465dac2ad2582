"""The session model's next items: its top-k from the session's state (with the item on screen).

Hard exclusions (bought, on screen, out of stock) are passed to the scorer, so that the k
over-fetched items are all showable; rules downstream may still drop some.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nextbest.recommend.candidates import Candidates
from nextbest.recommend.context import Context
from nextbest.recommend.stages import ModelQuery

EXACT_FACTOR = 2  # the first 2 n of the model's k items are its exact float ranking


@dataclass(frozen=True)
class SessionModelNext:
    name: str = "session"  # replaced by the model's own name in the items' `source`

    def query(self, ctx: Context, k: int) -> ModelQuery | None:
        if ctx.model is None or ctx.state is None:
            return None
        banned = ctx.hard_banned
        # the items likely shown come in the exact float order; the over-fetch behind them
        # (for rules and fusion to draw on) in int8 order, which is within proven bounds
        return ModelQuery(ctx.state, banned[banned < ctx.items.n_model], EXACT_FACTOR * ctx.n)

    def from_top(self, ctx: Context, top: np.ndarray, values: np.ndarray, k: int) -> Candidates:
        assert ctx.model is not None
        anchor = ctx.anchor_row
        if anchor is not None:
            reason = f"next after {ctx.items.title_of(anchor)}"
        else:
            reason = "picked for you"  # a returning user's start state, before any event
        return Candidates.of(np.asarray(top, np.int64), values, ctx.model.name, reason)

    def generate(self, ctx: Context, k: int) -> Candidates:
        return generate_from_model(self, ctx, k)


def generate_from_model(generator: Any, ctx: Context, k: int) -> Candidates:
    """A model-query generator on its own (the pipeline batches several into one pass)."""
    query = generator.query(ctx, k) if k > 0 else None
    if isinstance(query, Candidates):
        return query
    if query is None or ctx.model is None:
        return Candidates.empty()
    asked = query.k if query.k is not None else k
    answers = ctx.model.score.top_many([query.state], [asked], [query.banned], [query.exact])
    candidates: Candidates = generator.from_top(ctx, *answers[0], k)
    return candidates
