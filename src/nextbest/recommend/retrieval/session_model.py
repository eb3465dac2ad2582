"""The session model's next items: its top-k from the session's state (with the item on screen).

Hard exclusions (bought, on screen, out of stock) are passed to the scorer, so that the k
over-fetched items are all showable; rules downstream may still drop some.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.recommend.candidates import Candidates
from nextbest.recommend.context import Context


@dataclass(frozen=True)
class SessionModelNext:
    name: str = "session"  # replaced by the model's own name in the items' `source`

    def generate(self, ctx: Context, k: int) -> Candidates:
        model, state = ctx.model, ctx.state
        if model is None or state is None or k <= 0:
            return Candidates.empty()
        banned = ctx.hard_banned
        top, values = model.score.top(state, k, banned[banned < ctx.items.n_model])
        anchor = ctx.anchor_row
        if anchor is not None:
            reason = f"next after {ctx.items.title_of(anchor)}"
        else:
            reason = "picked for you"  # a returning user's start state, before any event
        return Candidates.of(np.asarray(top, np.int64), values, model.name, reason)
