"""The search vocabulary: the queries shoppers type, built from category, brand and colour words.

Each leaf category has a block of queries: its own name ("running shoes"), its name with a
brand that sells there ("strideon running shoes"), and with a colour where items have one
("blue running shoes"). A search then clicks results of that leaf that match the query's
brand and colour, so a query's words always name the clicked item's category, and its brand
or colour when it has one: the signal keyword recommendations learn from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.data.demo_shop.catalog import Catalog
from nextbest.data.demo_shop.sampling import FloatArray, IntArray, block_cumsum
from nextbest.data.demo_shop.taxonomy import ATTRIBUTE_VALUES

PLAIN_WEIGHT = 3.0  # "running shoes"
BRAND_WEIGHT = 2.0  # shared by the leaf's brands, by their share of its items
COLOUR_WEIGHT = 0.08  # each "blue running shoes"


@dataclass(frozen=True)
class Vocabulary:
    texts: tuple[str, ...]  # [Q]
    leaf: IntArray  # [Q] the leaf the query is about
    brand: IntArray  # [Q] brand named in the query, -1 if none
    colour: IntArray  # [Q] colour named in the query, -1 if none
    cum: FloatArray  # [Q] running sum of how often each query is typed (within a leaf)
    leaf_start: IntArray  # [L] first query of the leaf
    leaf_end: IntArray  # [L]


def build_vocabulary(catalog: Catalog) -> Vocabulary:
    texts: list[str] = []
    rows: list[tuple[int, int, int, float]] = []  # (leaf, brand, colour, weight)
    starts, ends = [], []
    colours = ATTRIBUTE_VALUES["colour"]
    for leaf_index, leaf in enumerate(catalog.leaves):
        starts.append(len(texts))
        name = leaf.name.lower()
        texts.append(name)
        rows.append((leaf_index, -1, -1, PLAIN_WEIGHT))
        block = slice(catalog.leaf_start[leaf_index], catalog.leaf_end[leaf_index])
        brands, counts = np.unique(catalog.item_brand[block], return_counts=True)
        for brand, count in zip(brands.tolist(), counts.tolist(), strict=True):
            texts.append(f"{catalog.brand_names[brand].lower()} {name}")
            rows.append((leaf_index, brand, -1, BRAND_WEIGHT * count / counts.sum()))
        if "c" in leaf.attributes:
            for colour_index, colour in enumerate(colours):
                texts.append(f"{colour} {name}")
                rows.append((leaf_index, -1, colour_index, COLOUR_WEIGHT))
        ends.append(len(texts))
    table = np.array(rows, dtype=np.float64)  # [Q, 4]
    return Vocabulary(
        texts=tuple(texts),
        leaf=table[:, 0].astype(np.int64),
        brand=table[:, 1].astype(np.int64),
        colour=table[:, 2].astype(np.int64),
        cum=block_cumsum(table[:, 3]),
        leaf_start=np.array(starts, dtype=np.int64),
        leaf_end=np.array(ends, dtype=np.int64),
    )
