"""Draw the demo shop's items from the taxonomy: brands, prices, discounts, attributes, titles.

Items are stored grouped by leaf category (item index j of leaf l lies in
[leaf_start[l], leaf_end[l])), so "an item of this leaf" is one block draw (`sampling.py`).
The public item ids are a shuffled numbering, so an id says nothing about the category.

Popularity is long-tailed on purpose: within a leaf, the r-th item draws weight 1 / r^1.1
(Zipf-like), and leaves differ in traffic, so a few hundred items carry most of the views.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from nextbest.data.demo_shop.sampling import BoolArray, FloatArray, IntArray, block_cumsum
from nextbest.data.demo_shop.taxonomy import (
    ADJECTIVES,
    ATTRIBUTE_CODES,
    ATTRIBUTE_VALUES,
    BRANDS,
    COMPLEMENTS,
    LEAVES,
    Leaf,
)

KINDS = ("regular", "durable", "consumable")
ZIPF_EXPONENT = 1.1
PRICE_SPREAD = 0.35  # sigma of log price around the leaf median
DISCOUNT_SHARE = 0.2
DISCOUNTS = np.array([0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5])
IN_STOCK_SHARE = 0.94
OUT_OF_STOCK_TRAFFIC = 0.3  # an item out of stock is still shown, less often
N_RELATED = 6  # "similar items" per item: same leaf, near in price, often same brand
RELATED_POOL = 300  # a leaf larger than this finds related items in a sample of this size


@dataclass(frozen=True)
class Catalog:
    """The leaf-level structure and the items, as arrays indexed by leaf l or item j."""

    leaves: tuple[Leaf, ...]
    brand_names: tuple[str, ...]
    leaf_kind: IntArray  # [L] index into KINDS
    leaf_cycle: FloatArray  # [L] repurchase cycle in seconds (0 unless consumable)
    leaf_cum: FloatArray  # [L] running sum of leaf traffic
    open_leaf_cum: FloatArray  # [L] the same with durables at 0: leaves that are never blocked
    complements: IntArray  # [L, C] complement leaves, -1 padded
    n_complements: IntArray  # [L]
    siblings: IntArray  # [L, S] leaves under the same parent, -1 padded
    n_siblings: IntArray  # [L]
    leaf_start: IntArray  # [L] first item of the leaf
    leaf_end: IntArray  # [L] one past its last item
    item_leaf: IntArray  # [N]
    item_brand: IntArray  # [N]
    item_price: FloatArray  # [N]
    item_discount: FloatArray  # [N] 0..1
    item_rel_price: FloatArray  # [N] log(price / leaf median): the price band
    item_colour: IntArray  # [N] index into ATTRIBUTE_VALUES["colour"], -1 if none
    item_in_stock: BoolArray  # [N]
    item_cum: FloatArray  # [N] running sum of popularity (compare only within a leaf)
    item_number: IntArray  # [N] the public id is f"i{item_number:0{id_width}d}"
    id_width: int
    related: IntArray  # [N, N_RELATED] similar items of the same leaf
    titles: tuple[str, ...]
    attributes: tuple[str, ...]  # JSON objects as text

    @property
    def n_leaves(self) -> int:
        return len(self.leaves)

    @property
    def n_items(self) -> int:
        return len(self.item_leaf)

    def item_ids(self) -> list[str]:
        return [f"i{n:0{self.id_width}d}" for n in self.item_number.tolist()]


def build_catalog(n_items: int, rng: np.random.Generator) -> Catalog:
    leaves = LEAVES
    index = {leaf.name: i for i, leaf in enumerate(leaves)}
    traffic = np.array([leaf.traffic for leaf in leaves])  # [L]
    kind = np.array([KINDS.index(leaf.kind) for leaf in leaves], dtype=np.int64)
    complements, n_complements = _padded(
        [[index[c] for c in COMPLEMENTS.get(leaf.name, ())] for leaf in leaves]
    )
    siblings, n_siblings = _padded(
        [
            [j for j, o in enumerate(leaves) if o.mid == leaf.mid and j != i]
            for i, leaf in enumerate(leaves)
        ]
    )
    counts = _items_per_leaf(n_items, traffic, rng)  # [L]
    leaf_end = np.cumsum(counts)
    leaf_start = leaf_end - counts
    item_leaf = np.repeat(np.arange(len(leaves)), counts)  # [N]
    brand_names = tuple(BRANDS)
    strength = rng.lognormal(0.0, 0.6, len(brand_names))  # [B] how much a brand sells
    item_brand = _draw_brands(leaves, brand_names, strength, counts, rng)
    level = np.array([BRANDS[b][1] for b in brand_names])  # [B]
    median = np.array([leaf.median_price for leaf in leaves])  # [L]
    raw = median[item_leaf] * level[item_brand] * rng.lognormal(0.0, PRICE_SPREAD, n_items)
    price = np.where(raw >= 10, np.round(raw) - 0.01, np.round(raw, 1) - 0.01)  # [N] x.99
    price = np.maximum(price, 0.49)
    discounted = rng.random(n_items) < DISCOUNT_SHARE
    discount = np.where(discounted, rng.choice(DISCOUNTS, n_items), 0.0)
    in_stock = rng.random(n_items) < IN_STOCK_SHARE
    popularity = _popularity(counts, rng) * np.sqrt(strength[item_brand])
    popularity *= np.where(in_stock, 1.0, OUT_OF_STOCK_TRAFFIC)
    attributes, colour = _attributes(leaves, item_leaf, rng)
    titles = _titles(leaves, brand_names, item_leaf, item_brand, colour, rng)
    rel_price = np.log(price / median[item_leaf])
    related = _related(leaf_start, leaf_end, item_brand, rel_price, popularity, rng)
    width = max(5, len(str(n_items - 1)))
    return Catalog(
        leaves=leaves,
        brand_names=brand_names,
        leaf_kind=kind,
        leaf_cycle=np.array([leaf.cycle_days * 86_400.0 for leaf in leaves]),
        leaf_cum=block_cumsum(traffic),
        open_leaf_cum=block_cumsum(np.where(kind == KINDS.index("durable"), 0.0, traffic)),
        complements=complements,
        n_complements=n_complements,
        siblings=siblings,
        n_siblings=n_siblings,
        leaf_start=leaf_start,
        leaf_end=leaf_end,
        item_leaf=item_leaf,
        item_brand=item_brand,
        item_price=price,
        item_discount=discount,
        item_rel_price=rel_price,
        item_colour=colour,
        item_in_stock=in_stock,
        item_cum=block_cumsum(popularity),
        item_number=rng.permutation(n_items).astype(np.int64),
        id_width=width,
        related=related,
        titles=tuple(titles),
        attributes=tuple(attributes),
    )


def _padded(rows: list[list[int]]) -> tuple[IntArray, IntArray]:
    """[n, max_len] table padded with -1, and [n] row lengths."""
    width = max(1, max(len(r) for r in rows))
    table = np.full((len(rows), width), -1, dtype=np.int64)
    for i, row in enumerate(rows):
        table[i, : len(row)] = row
    return table, np.array([len(r) for r in rows], dtype=np.int64)


def _items_per_leaf(n_items: int, traffic: FloatArray, rng: np.random.Generator) -> IntArray:
    """[L] assortment sizes: at least 5 each, the rest split by traffic with some noise."""
    minimum = 5
    share = np.sqrt(traffic) * rng.lognormal(0.0, 0.3, len(traffic))
    extra = rng.multinomial(n_items - minimum * len(traffic), share / share.sum())
    return (extra + minimum).astype(np.int64)


def _draw_brands(
    leaves: tuple[Leaf, ...],
    brand_names: tuple[str, ...],
    strength: FloatArray,
    counts: IntArray,
    rng: np.random.Generator,
) -> IntArray:
    """[N] brand of each item, among the brands that sell in its leaf, by brand strength."""
    parts = []
    for leaf, count in zip(leaves, counts.tolist(), strict=True):
        names = {leaf.top, leaf.mid, leaf.name}
        sellers = np.array([b for b, n in enumerate(brand_names) if names & set(BRANDS[n][0])])
        weights = strength[sellers] / strength[sellers].sum()
        parts.append(rng.choice(sellers, size=count, p=weights))
    return np.concatenate(parts).astype(np.int64)


def _popularity(counts: IntArray, rng: np.random.Generator) -> FloatArray:
    """[N] Zipf-like weights within each leaf, ranks shuffled so position means nothing."""
    parts = []
    for count in counts.tolist():
        rank = rng.permutation(count) + 1
        parts.append(rank.astype(np.float64) ** -ZIPF_EXPONENT)
    return np.concatenate(parts)


def _attributes(
    leaves: tuple[Leaf, ...], item_leaf: IntArray, rng: np.random.Generator
) -> tuple[list[str], IntArray]:
    """Per item: its attributes as JSON text, and [N] its colour index (-1 without colour)."""
    colour = np.full(len(item_leaf), -1, dtype=np.int64)
    values: dict[str, IntArray] = {
        name: rng.integers(0, len(options), len(item_leaf))
        for name, options in ATTRIBUTE_VALUES.items()
    }
    has_colour = np.array(["c" in leaf.attributes for leaf in leaves])[item_leaf]
    colour[has_colour] = values["colour"][has_colour]
    texts = []
    for j, leaf_index in enumerate(item_leaf.tolist()):
        names = [ATTRIBUTE_CODES[code] for code in leaves[leaf_index].attributes]
        texts.append(json.dumps({n: ATTRIBUTE_VALUES[n][int(values[n][j])] for n in names}))
    return texts, colour


def _titles(
    leaves: tuple[Leaf, ...],
    brand_names: tuple[str, ...],
    item_leaf: IntArray,
    item_brand: IntArray,
    colour: IntArray,
    rng: np.random.Generator,
) -> list[str]:
    """Titles like "Strideon Flex Running Shoe 520 (blue)": brand, adjective, noun, model."""
    adjective = rng.integers(0, len(ADJECTIVES), len(item_leaf))
    model = rng.integers(1, 100, len(item_leaf)) * 10
    colours = ATTRIBUTE_VALUES["colour"]
    titles = []
    for j in range(len(item_leaf)):
        title = (
            f"{brand_names[item_brand[j]]} {ADJECTIVES[adjective[j]]} "
            f"{leaves[item_leaf[j]].noun} {model[j]}"
        )
        titles.append(f"{title} ({colours[colour[j]]})" if colour[j] >= 0 else title)
    return titles


def _related(
    leaf_start: IntArray,
    leaf_end: IntArray,
    item_brand: IntArray,
    rel_price: FloatArray,
    popularity: FloatArray,
    rng: np.random.Generator,
) -> IntArray:
    """[N, N_RELATED] for each item, items of its leaf close in price, often of its brand.

    This is the shop's "similar items" strip: a product page leads to these, which gives the
    item-to-item structure a session model can learn beyond "same category".
    """
    related = np.empty((len(item_brand), N_RELATED), dtype=np.int64)
    for start, end in zip(leaf_start.tolist(), leaf_end.tolist(), strict=True):
        members = np.arange(start, end)  # [m]
        if len(members) > RELATED_POOL:
            pool = rng.choice(members, RELATED_POOL, replace=False)
        else:
            pool = members
        score = -np.abs(rel_price[members, None] - rel_price[None, pool]) / 0.3  # [m, p]
        score += 1.0 * (item_brand[members, None] == item_brand[None, pool])
        score += 0.5 * np.log(popularity[pool] / popularity[pool].max())[None, :]
        score += rng.gumbel(size=score.shape)
        score[members[:, None] == pool[None, :]] = -np.inf  # never the item itself
        take = min(N_RELATED, len(pool) - 1)  # the item itself sorts last
        order = np.argsort(-score, axis=1, kind="stable")[:, :take]  # [m, take]
        if order.shape[1] < N_RELATED:  # tiny leaf: repeat what there is
            order = np.resize(order.T, (N_RELATED, len(members))).T
        related[members] = pool[order]
    return related
