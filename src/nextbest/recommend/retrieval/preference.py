"""Items the shopper's tastes point to (`source = "preference"`): the brands and categories
their affinity profiles lean to, in the price band around the item on screen (or their usual
band), with discounted items raised for shoppers who go for discounts.

The profiles are the session's (what it leans to now) and, for a known user, the user's
(lasting tastes); with both, each value's affinity is the mean of its two shares
(`recommend/affinity.py`). The candidates are the items of the shopper's `MAX_CATEGORIES`
categories (full paths, ranked by the affinity of the path and its first two levels) and of
their `MAX_BRANDS` brands. Each scores

    CATEGORY * (share of its path + of its first two levels + of its first level) / 3
    + BRAND * share of its brand
    + PRICE * price fit          (the anchor's band: 1, a neighbouring band: 1/2; without an
                                  item on screen, the same by the shopper's band shares,
                                  scaled to a best fit of 1)
    + DISCOUNT * max(0, 2 * discount sensitivity - 1)   (discounted items only)
    + POPULARITY * log(1 + count) / log(1 + the most counted candidate's count)

Price bands are relative to the item's category (`price_bands`), so "the band around the item
on screen" carries across categories. The reason names what weighs most: "because you like
BRAND", "because you like CATEGORY" or "because you like deals". No profile, no candidates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from nextbest.events.schema import CATEGORY_SEPARATOR
from nextbest.recommend.affinity import PRICE_BANDS, Affinity, ItemFacets
from nextbest.recommend.candidates import Candidates
from nextbest.recommend.context import Context
from nextbest.recommend.items import ItemTable

CATEGORY = 2.0
BRAND = 2.0
PRICE = 0.5
DISCOUNT = 0.5
POPULARITY = 0.5
MAX_CATEGORIES = 8
MAX_BRANDS = 4
BAND = {band: code for code, band in enumerate(PRICE_BANDS)}
LIKE = "because you like "
_GAP = np.abs(np.subtract.outer(np.arange(len(PRICE_BANDS)), np.arange(len(PRICE_BANDS))))
NEARNESS = np.where(_GAP == 0, 1.0, np.where(_GAP == 1, 0.5, 0.0))  # band x band


@dataclass(frozen=True)
class Columns:
    """What the generator reads per row, derived once per item table and facets."""

    facets: ItemFacets | None
    brands: dict[str, int]  # brand -> code
    brand_code: np.ndarray  # int64 [R], -1: none
    brand_rows: dict[int, np.ndarray]  # brand code -> its rows
    # per level (the first two, then the first): value -> code, and each category's code
    levels: tuple[tuple[dict[str, int], np.ndarray], ...]
    band: np.ndarray  # int64 [R] price band code, -1: unknown
    discounted: np.ndarray  # bool [R]
    # the reasons, written once: per brand code (the last: none), and per category code (the
    # last: none) at each depth named (its leaf, its second level, its first level)
    brand_reason: np.ndarray  # object [B + 1]
    category_reason: np.ndarray  # object [3, C + 1]

    @classmethod
    def of(cls, items: ItemTable, facets: ItemFacets | None) -> Columns:
        found = items.memo.get("preference_columns")
        if isinstance(found, Columns) and found.facets is facets:
            return found
        brands = {str(b): code for code, b in enumerate(sorted({b for b in items.brand if b}))}
        brand_code = np.array([brands.get(b, -1) if b else -1 for b in items.brand], np.int64)
        order = np.argsort(brand_code, kind="stable")
        bounds = np.searchsorted(brand_code[order], np.arange(len(brands) + 1))
        brand_rows = {c: order[bounds[c] : bounds[c + 1]] for c in range(len(brands))}
        parts = [path.split(CATEGORY_SEPARATOR) for path in items.categories]
        levels = []
        for depth in (2, 1):
            names = [CATEGORY_SEPARATOR.join(p[:depth]) if len(p) >= depth else "" for p in parts]
            codes = {name: code for code, name in enumerate(sorted(set(names) - {""}))}
            levels.append((codes, np.array([codes.get(n, -1) for n in names], dtype=np.int64)))
        band = np.full(len(items), -1, dtype=np.int64)
        if facets is not None:
            for row, item in enumerate(items.ids):
                item_facets = facets.get(item)
                value = item_facets.values[-1] if item_facets is not None else None
                if value is not None:
                    band[row] = BAND[value]
        with np.errstate(invalid="ignore"):
            discounted = (items.discount > 0) & ~np.isnan(items.price)
        brand_reason = np.array([*(f"{LIKE}{b}" for b in brands), ""], dtype=object)
        category_reason = np.array(
            [[f"{LIKE}{p[min(depth, len(p)) - 1]}" for p in parts] + [""] for depth in (9, 2, 1)],
            dtype=object,
        )  # depth 9: the leaf, however deep
        columns = cls(
            facets, brands, brand_code, brand_rows, tuple(levels), band, discounted,
            brand_reason, category_reason,
        )  # fmt: skip
        items.memo["preference_columns"] = columns
        return columns


def leaning(profiles: list[Affinity], attribute: str) -> dict[str, float]:
    """Each value's affinity: the mean of its shares in `profiles`."""
    out: dict[str, float] = {}
    for profile in profiles:
        for value, share in profile.scores(attribute).items():
            out[value] = out.get(value, 0.0) + share / len(profiles)
    return out


@dataclass(frozen=True)
class Preference:
    name: str = "preference"

    def generate(self, ctx: Context, k: int) -> Candidates:
        profiles = [p for p in (ctx.session_affinity, ctx.user_affinity) if p is not None]
        items = ctx.items
        if not profiles or k <= 0 or not len(items):
            return Candidates.empty()
        columns = Columns.of(items, ctx.facets)
        # per category code: the affinity of its path, its first two levels, its first level
        # (one more entry at the end for "none": code -1)
        shares = [np.append(_over(items.code_of, leaning(profiles, "category")), 0.0)]
        for (codes, of_category), attribute in zip(
            columns.levels, ("category_2", "category_1"), strict=True
        ):
            level = np.append(_over(codes, leaning(profiles, attribute)), 0.0)
            shares.append(np.append(level[of_category], 0.0))
        on_path = (shares[0] + shares[1] + shares[2]) / 3.0
        brand_share = np.append(_over(columns.brands, leaning(profiles, "brand")), 0.0)
        top_categories = np.argsort(-on_path[:-1], kind="stable")[:MAX_CATEGORIES]
        top_brands = np.argsort(-brand_share[:-1], kind="stable")[:MAX_BRANDS]
        pool = [items.category_rows[int(c)] for c in top_categories if on_path[c] > 0]
        pool += [columns.brand_rows[int(b)] for b in top_brands if brand_share[b] > 0]
        if not pool:
            return Candidates.empty()
        rows = np.unique(np.concatenate(pool))
        rows = rows[~ctx.hard_banned_mask[rows]]
        if not len(rows):
            return Candidates.empty()
        category_term = CATEGORY * on_path[items.category_code[rows]]
        brand_term = BRAND * brand_share[columns.brand_code[rows]]
        # the price band wanted: the anchor's, else the shopper's usual bands by their share;
        # a band fits by its nearness to the wanted ones (same 1, next 1/2), best fit 1
        anchor = ctx.screen_row
        if anchor is not None and columns.band[anchor] >= 0:
            wanted = np.eye(len(PRICE_BANDS))[columns.band[anchor]]
        else:
            bands = leaning(profiles, "price_band")
            wanted = np.array([bands.get(b, 0.0) for b in PRICE_BANDS])
        by_band = np.append(NEARNESS @ wanted, 0.0)  # the last: an unknown band
        fit = by_band[columns.band[rows]] / by_band.max() if by_band.max() > 0 else 0.0
        base = ctx.facets.discount_base if ctx.facets is not None else 0.0
        sensitivity = float(np.mean([p.discount_sensitivity(base) for p in profiles]))
        deal_term = DISCOUNT * max(0.0, 2.0 * sensitivity - 1.0) * columns.discounted[rows]
        counts = ctx.live.count_rows(items)[rows]
        top = counts.max() if counts.size else 0.0
        popularity = np.log1p(counts) / np.log1p(top) if top > 0 else np.zeros(len(rows))
        scores = category_term + brand_term + PRICE * fit + deal_term + POPULARITY * popularity
        order = np.argsort(-scores, kind="stable")[:k]
        picked = rows[order]
        # the reason: the deal when it weighs most, else the brand when it weighs at least as
        # much as the category, else the category at the deepest level the shopper leans to
        code = items.category_code[picked]
        depth = np.where(shares[0][code] > 0, 0, np.where(shares[1][code] > 0, 1, 2))
        reasons = columns.category_reason[depth, code]
        brand = columns.brand_code[picked]
        by_brand = (brand_term[order] >= category_term[order]) & (brand >= 0)
        reasons = np.where(by_brand, columns.brand_reason[brand], reasons)
        deal = deal_term[order] > np.maximum(brand_term[order], category_term[order])
        reasons = np.where(deal, "because you like deals", reasons)
        reasons = np.where(reasons == "", "picked for you", reasons).astype(object)
        return Candidates.of(picked, scores[order], self.name, reasons)


def _over(codes: Mapping[str, int], shares: dict[str, float]) -> np.ndarray:
    """`shares` by value as an array over `codes` (0 for values without a code)."""
    out = np.zeros(len(codes))
    for value, share in shares.items():
        code = codes.get(value)
        if code is not None:
            out[code] = share
    return out
