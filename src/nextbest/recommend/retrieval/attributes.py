"""Items like the one on screen by their attributes: a "similar items" answer that needs no
training, so it works for an item added a minute ago.

The candidates are the items of the anchor's category, then of its sibling categories (same
parent) when the category has too few. Each scores

    SAME_CATEGORY (in the anchor's category) + SAME_BRAND (its brand)
    + exp(-|log(price / anchor price)| / PRICE_WIDTH)      (near in price; 0 without prices)
    + POPULARITY * log(1 + count) / log(1 + the most counted candidate's count)

where the counts are the shop's recent popularity (`LiveCounts.count_rows`). The category
term outweighs the others together, so the category's own items come first; within it a
same-brand item beats one of another brand, price nearness comes next, and popularity
orders what the attributes leave close.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.events.schema import CATEGORY_SEPARATOR
from nextbest.recommend.candidates import Candidates, best_first
from nextbest.recommend.context import Context
from nextbest.recommend.items import ItemTable

SAME_CATEGORY = 3.0  # more than the other terms together: the category's own items first
SAME_BRAND = 1.0
PRICE_WIDTH = 0.4  # log-price distance at which nearness has fallen to 1/e
POPULARITY = 0.5


def sibling_codes(items: ItemTable) -> dict[int, np.ndarray]:
    """Per category code, the codes under the same parent (itself excluded); kept in the
    table's memo, built once per table."""
    found = items.memo.get("sibling_codes")
    if found is None:
        by_parent: dict[str, list[int]] = {}
        for code, path in enumerate(items.categories):
            parent = path.rsplit(CATEGORY_SEPARATOR, 1)[0] if CATEGORY_SEPARATOR in path else ""
            by_parent.setdefault(parent, []).append(code)
        found = {}
        for code, path in enumerate(items.categories):
            parent = path.rsplit(CATEGORY_SEPARATOR, 1)[0] if CATEGORY_SEPARATOR in path else ""
            found[code] = np.array([c for c in by_parent[parent] if c != code], dtype=np.int64)
        items.memo["sibling_codes"] = found
    return found  # type: ignore[no-any-return]


@dataclass(frozen=True)
class AttributeSimilar:
    name: str = "attributes"

    def generate(self, ctx: Context, k: int) -> Candidates:
        anchor, items = ctx.anchor_row, ctx.items
        if anchor is None or items.category_code[anchor] < 0:
            return Candidates.of([], [], self.name, "")
        code = int(items.category_code[anchor])
        own = items.category_rows[code]
        rows = own
        if len(own) <= k:
            near = [items.category_rows[c] for c in sibling_codes(items)[code]]
            rows = np.concatenate([own, *near]) if near else own
        rows = rows[(rows != anchor) & ~ctx.hard_banned_mask[rows]]
        if not len(rows):
            return Candidates.of([], [], self.name, "")
        scores = SAME_CATEGORY * (items.category_code[rows] == code)
        brand = items.brand_code[anchor]
        same_brand = items.brand_code[rows] == brand if brand >= 0 else np.zeros(len(rows), bool)
        scores = scores + SAME_BRAND * same_brand
        price = items.price[anchor]
        if price > 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                distance = np.abs(np.log(items.price[rows] / price))
            scores = scores + np.nan_to_num(np.exp(-distance / PRICE_WIDTH), nan=0.0)
        counts = ctx.live.count_rows(items)[rows].astype(np.float64)
        if counts.size and counts.max() > 0:
            scores = scores + POPULARITY * np.log1p(counts) / np.log1p(counts.max())
        order = best_first(scores, k)
        title = items.title_of(anchor)
        texts = np.array([f"like {title}", f"like {title}, same brand"], dtype=object)
        reasons = texts[same_brand[order].astype(np.int64)]
        return Candidates.of(rows[order], scores[order], self.name, reasons)
