"""Simulated shoppers from the demo shop's planted truth, and how they react to what they see.

The demo shop is drawn from a seed (`nextbest.data.demo_shop`): its catalog (leaf categories,
their complements and siblings, brands, prices) and its registered users' lasting tastes (three
favourite leaves, two favourite brands, a price level) come back exactly from the same seed.
A simulated shopper is one of those users (or an anonymous visitor, with no tastes) with an
intent for this visit: a leaf, drawn as the demo shop draws a session's first intent.

How well an item fits the shopper (`ShopTruth.fit`, 0..1) is the planted truth, not any model's
opinion. Its leaf: the intent's fits best, then its complements, its siblings and the
shopper's favourite leaves. The item within its leaf: the demo shop's own choice model
(`picks.pick_in_leaf`), the item's popularity in its leaf, the brand of the item on screen
(+1.2), a favourite brand (+`brand_loyalty`), and a price near the shopper's level (blended
with the price of the item on screen when it is of the same leaf), as the same scores that
pick the shop's items, so an item the shop's shoppers would choose more often fits better. A shown
list is read top down with position bias (the chance to look at position k falls as
1 / log2(k + 2)), and a looked-at item is clicked with a chance in proportion to its fit, at
most one per list (the cascade model). A clicked item is carted, and a carted one bought, with
chances that grow with its fit; after a purchase the shopper leaves or turns to a complement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nextbest.data.demo_shop.catalog import Catalog, build_catalog
from nextbest.data.demo_shop.config import DemoShopConfig
from nextbest.data.demo_shop.intents import FAVOURITE_CUM, P_FAVOURITE
from nextbest.data.demo_shop.picks import PRICE_WIDTH, SAME_BRAND
from nextbest.data.demo_shop.population import PRICE_LEVEL_SIGMA, Users, draw_users
from nextbest.data.demo_shop.queries import Vocabulary, build_vocabulary
from nextbest.data.demo_shop.sampling import sample_blocks, sample_weighted

# the fit of an item by how its leaf relates to the shopper's intent
FIT_INTENT, FIT_COMPLEMENT, FIT_SIBLING, FIT_FAVOURITE, FIT_OTHER = 1.0, 0.45, 0.3, 0.2, 0.02
QUERY_BRAND_BONUS = 1.4  # a keyword naming a favourite brand
# An item's appeal within its leaf is exp(its pick score - APPEAL_SHIFT), at most 1: an item
# of average popularity at the shopper's price, of no brand that speaks to them, has 0.37;
# one of a favourite brand (the shop's loyalty 2.0), 1.
APPEAL_SHIFT = 1.0
POPULARITY_WEIGHT = 0.5  # log-popularity within the leaf counts half (it also drew the picks)


@dataclass(frozen=True)
class Reactions:
    """The shoppers' habits: the knobs of the simulation."""

    # chance to click a looked-at item that fits perfectly: a list of ten perfect items is
    # clicked about a third of the time
    click: float = 0.1
    cart: float = 0.35  # chance to cart a clicked (or found) item that fits perfectly
    buy: float = 0.55  # chance to buy what was carted
    leave_after_miss: float = 0.35  # chance to leave after a list with nothing clicked
    leave_after_buy: float = 0.6
    keyword_click: float = 0.12  # chance to click a looked-at keyword that fits perfectly
    max_pages: int = 12
    anonymous_share: float = 0.4

    def __post_init__(self) -> None:
        for name in ("click", "cart", "buy", "leave_after_miss", "leave_after_buy",
                     "keyword_click", "anonymous_share"):  # fmt: skip
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Reactions.{name} must be in [0, 1], not {value!r}")
        if self.max_pages < 1:
            raise ValueError(f"Reactions.max_pages must be >= 1, not {self.max_pages!r}")


def looks_at(position: int) -> float:
    """The chance that a shopper looks at position `position` (0: the first) of a list."""
    return 1.0 / math.log2(position + 2)


@dataclass
class Shopper:
    user: int | None  # index of a registered user; None: an anonymous visitor
    intent: int  # the leaf they came for
    price_level: float
    favourite_leaves: frozenset[int] = frozenset()
    favourite_brands: frozenset[int] = frozenset()
    on_screen: int | None = None  # the item whose page they are on
    seen: set[int] = field(default_factory=set)  # items viewed this visit
    bought: set[int] = field(default_factory=set)

    @property
    def user_id(self) -> str | None:
        return None if self.user is None else f"u{self.user:06d}"


class ShopTruth:
    """The demo shop's planted world, rebuilt from its config."""

    def __init__(self, config: DemoShopConfig) -> None:
        rng = np.random.default_rng(config.seed)  # the generator's draws, in its order
        self.brand_loyalty = config.brand_loyalty
        self.catalog: Catalog = build_catalog(config.n_items, rng)
        self.vocabulary: Vocabulary = build_vocabulary(self.catalog)
        self.users: Users = draw_users(config.n_users, self.catalog, rng)
        self.item_ids = self.catalog.item_ids()
        self.row_of = {item: row for row, item in enumerate(self.item_ids)}
        self.query_of = {text: q for q, text in enumerate(self.vocabulary.texts)}
        c = self.catalog
        self._complements = [set(c.complements[leaf, : c.n_complements[leaf]].tolist())
                             for leaf in range(c.n_leaves)]  # fmt: skip
        self._siblings = [set(c.siblings[leaf, : c.n_siblings[leaf]].tolist())
                          for leaf in range(c.n_leaves)]  # fmt: skip
        # each item's popularity over its leaf's average (item_cum is a running sum)
        weight = np.diff(np.concatenate([[0.0], c.item_cum]))
        leaf_total = np.add.reduceat(weight, c.leaf_start)
        leaf_size = (c.leaf_end - c.leaf_start).astype(np.float64)
        average = (leaf_total / np.maximum(leaf_size, 1.0))[c.item_leaf]
        self._log_popularity = np.log(np.maximum(weight, 1e-12) / np.maximum(average, 1e-12))

    def shopper(self, rng: np.random.Generator, anonymous_share: float) -> Shopper:
        """A visitor: a registered user with their tastes, or an anonymous one."""
        catalog, users = self.catalog, self.users
        if rng.random() < anonymous_share:
            leaf = int(sample_weighted(catalog.leaf_cum, 1, rng)[0])
            return Shopper(None, leaf, float(rng.normal(0.0, PRICE_LEVEL_SIGMA)))
        user = int(rng.integers(len(users.price_level)))
        favourites = users.favourite_leaves[user]
        if rng.random() < P_FAVOURITE:
            leaf = int(favourites[sample_weighted(FAVOURITE_CUM, 1, rng)[0]])
        else:
            leaf = int(sample_weighted(catalog.leaf_cum, 1, rng)[0])
        return Shopper(
            user, leaf, float(users.price_level[user]),
            frozenset(favourites.tolist()), frozenset(users.favourite_brands[user].tolist()),
        )  # fmt: skip

    def find(self, shopper: Shopper, rng: np.random.Generator) -> int:
        """An item of the intent's leaf the shopper finds on their own (a category page, a
        search engine), by the items' popularity."""
        c = self.catalog
        leaf = np.array([shopper.intent])
        return int(sample_blocks(c.item_cum, c.leaf_start[leaf], c.leaf_end[leaf], 1, rng)[0, 0])

    def leaf_fit(self, shopper: Shopper, leaf: int) -> float:
        if leaf == shopper.intent:
            return FIT_INTENT
        if leaf in self._complements[shopper.intent]:
            return FIT_COMPLEMENT
        if leaf in self._siblings[shopper.intent]:
            return FIT_SIBLING
        if leaf in shopper.favourite_leaves:
            return FIT_FAVOURITE
        return FIT_OTHER

    def fit(self, shopper: Shopper, row: int) -> float:
        """How well item `row` fits the shopper now, in [0, 1]."""
        if row in shopper.bought:
            return 0.0
        c = self.catalog
        leaf = int(c.item_leaf[row])
        value = self.leaf_fit(shopper, leaf) * self.appeal(shopper, row)
        if row in shopper.seen:
            value *= 0.3  # seen already this visit: rarely opened again
        return min(value, 1.0)

    def appeal(self, shopper: Shopper, row: int) -> float:
        """The item's appeal within its leaf, in (0, 1]: the demo shop's pick score."""
        c = self.catalog
        brand, leaf = int(c.item_brand[row]), int(c.item_leaf[row])
        score = POPULARITY_WEIGHT * float(self._log_popularity[row])
        target = shopper.price_level
        last = shopper.on_screen
        if last is not None:
            if int(c.item_brand[last]) == brand:
                score += SAME_BRAND
            if int(c.item_leaf[last]) == leaf:
                target = 0.5 * target + 0.5 * float(c.item_rel_price[last])
        if brand in shopper.favourite_brands:
            score += self.brand_loyalty
        distance = float(c.item_rel_price[row]) - target
        score -= distance * distance / (2 * PRICE_WIDTH**2)
        return min(math.exp(score - APPEAL_SHIFT), 1.0)

    def query_fit(self, shopper: Shopper, query: int) -> float:
        """How well a keyword (a query of the shop's vocabulary) fits the shopper."""
        v = self.vocabulary
        value = self.leaf_fit(shopper, int(v.leaf[query]))
        brand = int(v.brand[query])
        if brand >= 0 and brand in shopper.favourite_brands:
            value *= QUERY_BRAND_BONUS
        return min(value, 1.0)

    def complement(self, shopper: Shopper, rng: np.random.Generator) -> int:
        """The shopper's next intent after a purchase: a complement of the last one."""
        options = sorted(self._complements[shopper.intent]) or [shopper.intent]
        return int(options[int(rng.integers(len(options)))])


def pick(fits: list[float], chance: float, rng: np.random.Generator) -> int | None:
    """The position clicked in a list whose items fit as `fits` (top first): each looked at
    with position bias, clicked with `chance` x fit, at most one (None: no click)."""
    for position, value in enumerate(fits):
        if rng.random() < looks_at(position) * chance * value:
            return position
    return None
