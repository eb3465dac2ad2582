"""Which item a shopper opens within a leaf category, for every deciding session at once.

A pick draws a few candidates by the leaf's (long-tailed) popularity and keeps the one the
shopper likes best: the brand of the item they just saw, a favourite brand (by the shop's
`brand_loyalty`), a price near their band (and near the last item's price), plus Gumbel noise
so the choice stays random. Drawing
by popularity and then choosing by score samples roughly from popularity x exp(affinity),
without a per-session distribution over the whole leaf.
"""

from __future__ import annotations

import numpy as np

from nextbest.data.demo_shop.catalog import N_RELATED, Catalog
from nextbest.data.demo_shop.queries import Vocabulary
from nextbest.data.demo_shop.sampling import FloatArray, IntArray, best_of, sample_blocks

CANDIDATES = 8  # items weighed per browsing step
CLICK_CANDIDATES = 12  # search results weighed per click (more, so the query's brand shows up)
SAME_BRAND = 1.2  # bonus for the brand of the item just seen
PRICE_WIDTH = 0.4  # how far (in log price) from the wanted band an item still appeals
QUERY_BRAND = 4.0  # a result of the brand the query names
QUERY_COLOUR = 3.0  # a result of the colour the query names
NO_BRAND = -2  # favourite-brand filler for anonymous visitors: matches no item


def pick_in_leaf(
    catalog: Catalog,
    leaves: IntArray,
    last: IntArray,
    price_level: FloatArray,
    favourite_brands: IntArray,
    brand_loyalty: float,
    rng: np.random.Generator,
    k: int = CANDIDATES,
) -> IntArray:
    """[n] an item of each leaf.

    `last` is the previous item (-1 if none); `favourite_brands` is [n, 2], and an item of one
    of them gets `brand_loyalty` added to its score.
    """
    candidates = sample_blocks(
        catalog.item_cum, catalog.leaf_start[leaves], catalog.leaf_end[leaves], k, rng
    )  # [n, k]
    brand = catalog.item_brand[candidates]  # [n, k]
    has_last = last >= 0
    safe_last = np.maximum(last, 0)
    last_brand = np.where(has_last, catalog.item_brand[safe_last], NO_BRAND)  # [n]
    score = rng.gumbel(size=candidates.shape)  # [n, k]
    score += SAME_BRAND * (brand == last_brand[:, None])
    score += brand_loyalty * (brand[:, :, None] == favourite_brands[:, None, :]).any(axis=2)
    # Near the user's band, and near the last item's price when it is of the same leaf.
    near_last = has_last & (catalog.item_leaf[safe_last] == leaves)
    target = np.where(
        near_last, 0.5 * price_level + 0.5 * catalog.item_rel_price[safe_last], price_level
    )  # [n]
    score -= (catalog.item_rel_price[candidates] - target[:, None]) ** 2 / (2 * PRICE_WIDTH**2)
    return best_of(candidates, score)


def pick_result(
    catalog: Catalog,
    vocabulary: Vocabulary,
    queries: IntArray,
    price_level: FloatArray,
    favourite_brands: IntArray,
    brand_loyalty: float,
    rng: np.random.Generator,
) -> IntArray:
    """[n] the search result clicked for each query: of its leaf, its brand and its colour."""
    leaves = vocabulary.leaf[queries]
    candidates = sample_blocks(
        catalog.item_cum,
        catalog.leaf_start[leaves],
        catalog.leaf_end[leaves],
        CLICK_CANDIDATES,
        rng,
    )  # [n, k]
    brand, colour = vocabulary.brand[queries], vocabulary.colour[queries]  # [n]
    score = rng.gumbel(size=candidates.shape)  # [n, k]
    score += QUERY_BRAND * (
        (catalog.item_brand[candidates] == brand[:, None]) & (brand >= 0)[:, None]
    )
    score += QUERY_COLOUR * (
        (catalog.item_colour[candidates] == colour[:, None]) & (colour >= 0)[:, None]
    )
    score += brand_loyalty * (
        catalog.item_brand[candidates][:, :, None] == favourite_brands[:, None, :]
    ).any(axis=2)
    score -= (catalog.item_rel_price[candidates] - price_level[:, None]) ** 2 / (2 * PRICE_WIDTH**2)
    return best_of(candidates, score)


def pick_related(catalog: Catalog, last: IntArray, rng: np.random.Generator) -> IntArray:
    """[n] one of the "similar items" shown on the last item's page."""
    column = rng.integers(0, N_RELATED, len(last))
    return catalog.related[last, column]


def pick_query(vocabulary: Vocabulary, leaves: IntArray, rng: np.random.Generator) -> IntArray:
    """[n] a query about each leaf, by how often shoppers type it."""
    starts, ends = vocabulary.leaf_start[leaves], vocabulary.leaf_end[leaves]
    return sample_blocks(vocabulary.cum, starts, ends, 1, rng)[:, 0]
