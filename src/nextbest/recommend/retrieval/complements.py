"""Items that go with what the shopper has, from the rules learned at training
(`PurchaseRules`): the complements of the item on screen and of the cart's items (categories
bought after theirs, by lift), and what the shopper's purchases call for now (their
complements while recent, a consumable whose cycle has come round). Within a category, items
rank by recent popularity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.recommend.candidates import Candidates, best_first
from nextbest.recommend.context import Context

MAX_ANCHORS = 5  # items on screen and in the cart whose complements are looked up


@dataclass(frozen=True)
class Complements:
    name: str = "complements"

    def generate(self, ctx: Context, k: int) -> Candidates:
        # the product placement asks twice (its own generator, and inside `context`)
        key = (self.name, k)
        found = ctx.generated.get(key)
        if found is None:
            found = ctx.generated[key] = self._generate(ctx, k)
        return found

    def _generate(self, ctx: Context, k: int) -> Candidates:
        rules, items = ctx.purchase_rules, ctx.items
        if rules is None or k <= 0:
            return Candidates.empty()
        code_of = items.code_of
        wanted: dict[int, tuple[float, str]] = {}  # category code -> (weight, reason)

        def want(category: str, weight: float, reason: str) -> None:
            code = code_of.get(category)
            if code is not None and weight > wanted.get(code, (0.0, ""))[0]:
                wanted[code] = (weight, reason)

        anchors = [] if ctx.screen_row is None else [ctx.screen_row]
        anchors += [int(r) for r in ctx.cart_rows[::-1]]
        for anchor in list(dict.fromkeys(anchors))[:MAX_ANCHORS]:
            path = items.category[anchor]
            rule = rules.category(str(path)) if path else None
            for category, lift in rule.complements if rule is not None else ():
                want(category, 1.0 - 1.0 / lift, f"goes with {items.title_of(anchor)}")
        after = ctx.after_purchase
        if after is not None:
            bought_in = {str(items.category[row]): row for row, _ in ctx.purchases}
            for category, (weight, cause) in after.boosted.items():
                if cause == category:
                    leaf = category.rsplit(" > ", 1)[-1]
                    reason = f"time to restock: {leaf}"
                else:
                    reason = f"goes with {items.title_of(bought_in[cause])}"
                want(category, weight, reason)
        if not wanted:
            return Candidates.empty()
        banned = ctx.hard_banned_mask
        popularity = ctx.live.count_rows(items)
        rows_parts, scores_parts, reason_parts = [], [], []
        reasons: list[str] = []
        for code, (weight, reason) in wanted.items():
            members = items.category_rows.get(code, np.zeros(0, np.int64))
            members = members[~banned[members]]
            counts = popularity[members]
            rows_parts.append(members)
            scores_parts.append(weight * (1.0 + np.log1p(counts)))
            reason_parts.append(np.full(len(members), len(reasons)))  # each row's reason
            reasons.append(reason)
        rows = np.concatenate(rows_parts)
        scores = np.concatenate(scores_parts)
        order = best_first(scores, k)
        picked = np.array(reasons, dtype=object)[np.concatenate(reason_parts)[order]]
        return Candidates.of(rows[order], scores[order], self.name, picked)
