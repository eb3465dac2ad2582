"""Promotions and pins: a shop's own items in chosen slots of the list.

A promotion is a campaign (a title, a filter expression that selects its items, a start and
an end) placed on a placement in `slots` of the list, at given 1-based `positions` or spread
evenly. Its items are the placement's candidates that the filter selects, best first, then
other items of the shop it selects, by recent popularity. A pin puts one item at a position.
Promoted and pinned items pass the placement's rules like any other (nothing bought, out of
stock or filtered out is ever promoted); a campaign outside its window does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nextbest.recommend.candidates import Candidates, best_first, concat
from nextbest.recommend.context import Context
from nextbest.recommend.rules.filters import CompiledFilter, Interactions

MAX_POOL = 200  # catalog items considered for a campaign beyond the placement's candidates
CATALOG_STEP = 32  # of those, passed through the placement's rules at a time


@dataclass(frozen=True)
class Campaign:
    name: str
    title: str
    compiled: CompiledFilter
    start: float | None = None  # Unix time; None: always
    end: float | None = None

    def live(self, now: float) -> bool:
        return (self.start is None or now >= self.start) and (self.end is None or now < self.end)

    def selects(self, ctx: Context, rows: np.ndarray) -> np.ndarray:
        uses = self.compiled.uses_interactions
        interactions = ctx.interactions if uses else Interactions.empty()
        return self.compiled.keep(ctx.items, rows, interactions, ctx.now, ctx.query.filter_params)

    def catalog_rows(self, ctx: Context) -> np.ndarray:
        """The shop's items the campaign selects, most popular first (a filter without
        parameters or interactions is evaluated once per item table)."""
        static = not self.compiled.params and not self.compiled.uses_interactions
        key = ("campaign", self.compiled.text)
        rows = ctx.items.memo.get(key) if static else None
        if rows is None:
            every = np.arange(len(ctx.items), dtype=np.int64)
            rows = every[self.selects(ctx, every)] if len(every) else every
            if static:
                ctx.items.memo[key] = rows
        counts = ctx.live.count_rows(ctx.items)[rows]
        popular: np.ndarray = rows[best_first(counts, MAX_POOL)]
        return popular


@dataclass(frozen=True)
class Promotion:
    campaign: Campaign
    slots: int = 1
    positions: tuple[int, ...] = ()  # 1-based; empty: spread evenly over the list

    def where(self, n: int) -> list[int]:
        """0-based positions in a list of n."""
        if self.positions:
            return [p - 1 for p in self.positions[: self.slots] if p <= n]
        step = n / (self.slots + 1)
        return sorted({min(n - 1, round(step * (k + 1))) for k in range(self.slots)})


@dataclass(frozen=True)
class Pin:
    item_id: str
    position: int  # 1-based
    start: float | None = None
    end: float | None = None

    def live(self, now: float) -> bool:
        return (self.start is None or now >= self.start) and (self.end is None or now < self.end)


def place(
    ctx: Context,
    shown: Candidates,
    pool: Candidates,
    promotions: Sequence[Promotion],
    pins: Sequence[Pin],
    allowed: Callable[[Candidates], Candidates],
) -> Candidates:
    """`shown` with the live promotions' and pins' items in their slots (`pool`: the ranked
    candidates after rules; `allowed`: the placement's rules, for items from outside it)."""
    n = ctx.n
    extra: list[Candidates] = []
    position_of: dict[int, int] = {}  # list position -> index into the extra items
    taken: set[int] = set()
    for pin in pins:
        row = ctx.items.row_of.get(pin.item_id)
        if row is None or not pin.live(ctx.now) or pin.position > n:
            continue
        if pin.position - 1 in position_of or row in taken:
            continue
        one = allowed(Candidates.of([row], [0.0], "pinned", "pinned"))
        if len(one):
            position_of[pin.position - 1] = sum(len(e) for e in extra)
            extra.append(one)
            taken.add(row)
    for promotion in promotions:
        if not promotion.campaign.live(ctx.now):
            continue
        positions = [p for p in promotion.where(n) if p not in position_of]
        if not positions:
            continue
        picked = _campaign_items(ctx, promotion.campaign, pool, taken, len(positions), allowed)
        first = sum(len(e) for e in extra)
        for k, position in enumerate(positions[: len(picked)]):
            position_of[position] = first + k
        extra.append(picked)
        taken.update(picked.rows.tolist())
    if not position_of:
        return shown
    placed = concat(extra)
    rest = shown.take(np.array([row not in taken for row in shown.rows.tolist()], dtype=bool))
    order: list[int] = []
    r = 0
    for position in range(n):
        if position in position_of:
            order.append(position_of[position])
        elif r < len(rest):
            order.append(len(placed) + r)
            r += 1
    return concat([placed, rest]).take(np.array(order, dtype=np.int64))


def _campaign_items(
    ctx: Context,
    campaign: Campaign,
    pool: Candidates,
    taken: set[int],
    k: int,
    allowed: Callable[[Candidates], Candidates],
) -> Candidates:
    reason = f"promoted: {campaign.title}"
    pool = pool.head(MAX_POOL)  # the placement's best candidates are enough to pick from
    found = pool.take(campaign.selects(ctx, pool.rows)) if len(pool) else pool
    rows = [r for r in found.rows.tolist() if r not in taken][:k]
    if len(rows) < k:
        extra = [r for r in campaign.catalog_rows(ctx).tolist() if r not in taken]
        # the rules decide row by row, so a few rows at a time find the same first items
        # as all of them at once, and the first few usually suffice
        for start in range(0, len(extra), CATALOG_STEP):
            part = extra[start : start + CATALOG_STEP]
            more = allowed(Candidates.of(part, np.zeros(len(part)), "promoted", reason))
            rows += [r for r in more.rows.tolist() if r not in rows][: k - len(rows)]
            if len(rows) >= k:
                break
    return Candidates.of(rows, np.zeros(len(rows)), "promoted", reason)
