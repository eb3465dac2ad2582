"""What the shop does right now (`LiveCounts`): popular items, items viewed after the anchor,
and items new since training (which the model cannot score)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.recommend.candidates import Candidates, concat
from nextbest.recommend.context import Context

COVISIT, POPULARITY = "covisit", "popularity"


def found_rows(ctx: Context, found: list[tuple[str, float]]) -> tuple[np.ndarray, np.ndarray]:
    """The table rows and scores of live-count results (item ids), dropping unknown items."""
    row_of = ctx.items.row_of
    pairs = [(row_of[item], score) for item, score in found if item in row_of]
    rows = np.array([r for r, _ in pairs], dtype=np.int64)
    return rows, np.array([s for _, s in pairs], dtype=np.float64)


def popular_reasons(ctx: Context, rows: np.ndarray) -> list[str]:
    leaves = (ctx.items.leaf_of(int(r)) for r in rows)
    return [f"popular in {leaf}" if leaf else "popular now" for leaf in leaves]


@dataclass(frozen=True)
class LivePopular:
    name: str = POPULARITY

    def generate(self, ctx: Context, k: int) -> Candidates:
        rows, scores = found_rows(ctx, ctx.live.popular(k, ctx.skip))
        return Candidates.of(rows, scores, self.name, popular_reasons(ctx, rows))


@dataclass(frozen=True)
class LiveCovisit:
    name: str = COVISIT

    def generate(self, ctx: Context, k: int) -> Candidates:
        anchor = ctx.anchor_row
        if anchor is None:
            return Candidates.empty()
        found = ctx.live.followers(str(ctx.items.ids[anchor]), k, ctx.skip)
        rows, scores = found_rows(ctx, found)
        reason = f"often viewed after {ctx.items.title_of(anchor)}"
        return Candidates.of(rows, scores, self.name, reason)


@dataclass(frozen=True)
class NewItems:
    """Items the model does not know: those viewed right after the anchor (only new ones,
    unless the anchor is new itself), then popular new ones with at least `min_count` recent
    events. Sources are "covisit" and "popularity", as the live counts that found them."""

    name: str = "new"
    min_count: int = 3

    def generate(self, ctx: Context, k: int) -> Candidates:
        if k <= 0:
            return Candidates.empty()
        model, items = ctx.model, ctx.items
        known = model.index if model is not None else {}
        anchor = ctx.query.item_id or ctx.record.last_item
        if anchor is not None and anchor not in items.row_of:
            anchor = None
        anchor_is_new = anchor is not None and anchor not in known
        banned = ctx.skip

        def skip(item: str) -> bool:  # after a known item, only new items are "new"
            return banned(item) or (item in known and not anchor_is_new)

        parts = []
        if anchor is not None:
            rows, scores = found_rows(ctx, ctx.live.followers(anchor, k, skip))
            reason = f"often viewed after {items.title_of(items.row_of[anchor])}"
            parts.append(Candidates.of(rows, scores, COVISIT, reason))
        taken = {str(i) for i in items.ids[parts[0].rows]} if parts else set()
        if sum(len(p) for p in parts) < k and model is not None:
            popular = ctx.live.popular(
                k, lambda i: banned(i) or i in taken, self.min_count, unknown_to=model
            )
            rows, scores = found_rows(ctx, popular)
            rows, scores = rows[: k - len(taken)], scores[: k - len(taken)]
            parts.append(Candidates.of(rows, scores, POPULARITY, popular_reasons(ctx, rows)))
        return concat(parts)
