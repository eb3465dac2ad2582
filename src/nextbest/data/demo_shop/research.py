"""Research journeys: registered shoppers compare the same products over several visits.

Each registered user's session researches one leaf category: the one it starts in. Every item
the user opens there joins a short list of compared items (the latest `COMPARED`, most recent
first). If the user comes back within `RESEARCH_DAYS` without having bought in that leaf, the
new visit goes back to it with probability `DemoShopConfig.research_share` times a factor by
kind (a treadmill is researched longer than coffee beans) and continues the same list. There,
a share `research_revisit` of the views reopens a compared item (the shop's "recently viewed"
strip; the first view too). A compared item is carted more readily than a first look, so a
journey tends to end in buying one of them, and a purchase in the leaf ends the research.

Which items a user compared is exactly what the current session cannot show: it is in the
user's earlier sessions only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.data.demo_shop.catalog import Catalog
from nextbest.data.demo_shop.sampling import BoolArray, FloatArray, IntArray

DAY = 86_400.0
COMPARED = 6  # compared items remembered per research
RESEARCH_DAYS = 14.0  # a research older than this is forgotten
KIND_FACTOR = np.array([0.8, 1.0, 0.4])  # by KINDS: regular, durable, consumable
P_CART_COMPARED = 0.2  # cart a compared item on a later visit (a first look: P_CART)


@dataclass
class Research:
    """Each registered user's open research; row n_users (the anonymous) stays empty."""

    leaf: IntArray  # [U + 1] the leaf researched, -1 if none
    items: IntArray  # [U + 1, COMPARED] compared items there, most recent first, -1 padded
    time: FloatArray  # [U + 1] when the user last opened one of them

    @classmethod
    def empty(cls, n_users: int) -> Research:
        return cls(
            leaf=np.full(n_users + 1, -1, dtype=np.int64),
            items=np.full((n_users + 1, COMPARED), -1, dtype=np.int64),
            time=np.zeros(n_users + 1),
        )

    def goes_back(
        self,
        catalog: Catalog,
        rows: IntArray,
        t: FloatArray,
        share: float,
        rng: np.random.Generator,
    ) -> IntArray:
        """[n] the leaf each new session of `rows` goes back to, -1 for a fresh start."""
        leaf = self.leaf[rows]  # [n]
        kind = catalog.leaf_kind[np.maximum(leaf, 0)]
        back = (leaf >= 0) & (t - self.time[rows] < RESEARCH_DAYS * DAY)
        back &= rng.random(len(rows)) < share * KIND_FACTOR[kind]
        return np.where(back, leaf, -1)

    def begin(self, rows: IntArray, leaves: IntArray, t: FloatArray) -> None:
        """A fresh research of `leaves` (registered `rows` only)."""
        self.leaf[rows] = leaves
        self.items[rows] = -1
        self.time[rows] = t

    def close(self, rows: IntArray) -> None:
        """Bought in the researched leaf: nothing left to compare."""
        self.leaf[rows] = -1
        self.items[rows] = -1

    def add(self, rows: IntArray, items: IntArray, t: FloatArray) -> None:
        """Put `items` first in the compared lists of `rows` (unique rows), dropping a repeat
        of the same item and the oldest beyond COMPARED."""
        old = self.items[rows]  # [m, C]
        keep = old != items[:, None]  # [m, C]
        column = np.cumsum(keep, axis=1)  # [m, C] where each kept item goes, after the new one
        new = np.full((len(rows), COMPARED + 1), -1, dtype=np.int64)
        new[:, 0] = items
        r, c = np.nonzero(keep)
        new[r, column[r, c]] = old[r, c]
        self.items[rows] = new[:, :COMPARED]
        self.time[rows] = t


def reopen(compared: IntArray, last: IntArray, rng: np.random.Generator) -> IntArray:
    """[n] a compared item ([n, C], -1 padded) other than `last`, uniformly; -1 if none."""
    valid = (compared >= 0) & (compared != last[:, None])  # [n, C]
    count = valid.sum(axis=1)  # [n]
    pick = np.floor(rng.random(len(last)) * np.maximum(count, 1)).astype(np.int64)  # [n]
    column = np.argmax(np.cumsum(valid, axis=1) > pick[:, None], axis=1)  # [n]
    out: IntArray = np.where(count > 0, compared[np.arange(len(last)), column], -1)
    return out


def compared_last(compared: IntArray, last: IntArray) -> BoolArray:
    """[n] whether the item just seen was compared on an earlier visit."""
    out: BoolArray = ((compared == last[:, None]) & (last >= 0)[:, None]).any(axis=1)
    return out
