"""The home page: bestsellers and deals of the day, which some sessions open on.

A share `DemoShopConfig.teaser_share` of sessions starts with a view of a teaser from the home
page before the shopper turns to what they came for: half the time one of the shop's
bestsellers (by how often it is expected to be viewed), half the time one of that day's deals
(discounted items in stock, a new draw each day). The teaser says little about the session's
intent; a returning user's history says more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.data.demo_shop.catalog import Catalog
from nextbest.data.demo_shop.sampling import FloatArray, IntArray, block_cumsum, sample_weighted

DAY = 86_400.0
BESTSELLERS = 24
DEALS_PER_DAY = 12
P_DEAL = 0.5  # a teaser is a deal of the day, else a bestseller


@dataclass(frozen=True)
class FrontPage:
    bestsellers: IntArray  # [B] items
    bestseller_cum: FloatArray  # [B] running sum of their expected views
    deals: IntArray  # [days, D] the deals shown each day


def expected_views(catalog: Catalog) -> FloatArray:
    """[N] each item's share of views: its share of its leaf times the leaf's share of traffic."""
    popularity = np.diff(catalog.item_cum, prepend=0.0)  # [N]
    leaf_total = np.add.reduceat(popularity, catalog.leaf_start)  # [L]
    leaf_traffic = np.diff(catalog.leaf_cum, prepend=0.0)  # [L]
    share: FloatArray = popularity / leaf_total[catalog.item_leaf] * leaf_traffic[catalog.item_leaf]
    out: FloatArray = share / share.sum()
    return out


def build_front_page(catalog: Catalog, days: int, rng: np.random.Generator) -> FrontPage:
    views = np.where(catalog.item_in_stock, expected_views(catalog), 0.0)  # [N]
    best = np.argsort(-views, kind="stable")[:BESTSELLERS]
    on_sale = np.flatnonzero((catalog.item_discount > 0) & catalog.item_in_stock)  # [M]
    if not len(on_sale):  # a tiny catalog without discounts: the bestsellers are the deals
        on_sale = best
    # A weighted draw without replacement per day: the top D of log(weight) + Gumbel noise.
    keys = np.log(views[on_sale])[None, :] + rng.gumbel(size=(days, len(on_sale)))
    n_deals = min(DEALS_PER_DAY, len(on_sale))
    top = np.argpartition(-keys, n_deals - 1, axis=1)[:, :n_deals]  # [days, D]
    return FrontPage(
        bestsellers=best.astype(np.int64),
        bestseller_cum=block_cumsum(views[best]),
        deals=on_sale[np.sort(top, axis=1)].astype(np.int64),
    )


def pick_teaser(front: FrontPage, t: FloatArray, rng: np.random.Generator) -> IntArray:
    """[n] a teaser for sessions starting at `t` (seconds since the period start)."""
    n = len(t)
    day = np.minimum((t // DAY).astype(np.int64), len(front.deals) - 1)  # [n]
    deal = front.deals[day, rng.integers(0, front.deals.shape[1], n)]
    best = front.bestsellers[sample_weighted(front.bestseller_cum, n, rng)]
    out: IntArray = np.where(rng.random(n) < P_DEAL, deal, best)
    return out
