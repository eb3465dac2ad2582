"""A two-stage version's generators: every member's top-k for the session, merged.

With a `PipelineModel` serving (`nextbest train --pipeline`), each of its generators proposes
its own k items (the k of the pipeline file) from its part of the session's state, in one
scoring pass per member; the merged list carries `<label>.rank` and `<label>.score` for each
(NaN where that generator did not propose the item), which the `learned` ranker turns into
its features. As offline (`nextbest.twostage.generate`), the kNN family and co-visitation
propose only items with a positive score. With a single model serving, this source is that
model's top-k (the `session` source), so a placement that names it still answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.recommend.candidates import Candidates, merge
from nextbest.recommend.context import Context
from nextbest.recommend.retrieval.session_model import SessionModelNext
from nextbest.twostage.generate import POSITIVE_ONLY
from nextbest.twostage.model import MemberState, PipelineModel

NEIGHBOURS = ("sknn", "vsknn", "stan", "vstan")
POPULAR = ("pop", "spop", "catpop")


def reason_of(model: str, title: str | None) -> str:
    """What a shopper may read under an item, by the kind of generator that proposed it."""
    if model in NEIGHBOURS:
        return "shoppers with sessions like yours went on to it"
    if model == "covisit":
        return f"often viewed after {title}" if title else "often viewed together"
    if model in POPULAR:
        return "popular"
    return f"next after {title}" if title else "picked for you"


def served_pipeline(ctx: Context) -> PipelineModel | None:
    model = ctx.model.model if ctx.model is not None else None
    return model if isinstance(model, PipelineModel) else None


@dataclass(frozen=True)
class PipelineGenerators:
    name: str = "generators"

    def generate(self, ctx: Context, k: int) -> Candidates:
        pipeline = served_pipeline(ctx)
        if pipeline is None:
            return SessionModelNext().generate(ctx, k)
        state = ctx.state
        if state is None or ctx.model is None:
            return Candidates.empty()
        banned = ctx.hard_banned
        banned = banned[banned < ctx.items.n_model]
        specs = pipeline.spec.generators
        # items without a training event: banned for the generators that would propose them
        # (the kNN family and co-visitation score them 0, and propose positive scores only)
        everywhere = banned
        unsupported = pipeline.unsupported  # sorted, and fixed for the version
        if len(unsupported) and any(g.model not in POSITIVE_ONLY for g in specs):
            # the union, unique, without sorting tens of thousands again
            at = np.minimum(np.searchsorted(unsupported, banned), len(unsupported) - 1)
            everywhere = np.concatenate([banned[unsupported[at] != banned], unsupported])
        answers = ctx.model.score.top_many(
            [MemberState(m, part) for m, part in enumerate(state.parts)],
            [g.k for g in specs],
            [banned if g.model in POSITIVE_ONLY else everywhere for g in specs],
            None,
        )
        anchor = ctx.anchor_row
        title = ctx.items.title_of(anchor) if anchor is not None else None
        lists = []
        for g, (top, values) in zip(specs, answers, strict=True):
            top, values = np.asarray(top, np.int64), np.asarray(values, np.float64)
            keep = np.isfinite(values)
            if g.model in POSITIVE_ONLY:
                keep &= values > 0
            top, values = top[keep], values[keep]
            part = Candidates.of(top, values, g.name, reason_of(g.model, title))
            lists.append(
                part.with_features(
                    **{
                        f"{g.name}.rank": np.arange(1, len(top) + 1, dtype=np.float64),
                        f"{g.name}.score": values,
                    }
                )
            )
        merged = merge(lists)
        return merged.head(k)
