"""Affinity profiles: how much a shopper leans to each brand, category, price band and discount.

A profile keeps, per attribute, a time-decayed weight per value: every item event adds its
action's weight (a purchase counts more than a cart add, a cart add more than a view) to the
item's brand, its category at each level, its price band, and to the discounted or full-price
side. The affinity to a value is its share of the attribute's weight, so it lies in [0, 1]
and the values of one attribute sum to at most 1.

    facets = ItemFacets.build(catalog_items)          # once per catalog change
    profile = Affinity()
    profile.add(facets.get("i42"), "cart", time, USER_HALF_LIFE)   # O(1) per event
    profile.top("brand", 5)                           # [("Peakline", 0.61), ...]
    profile.discount_sensitivity(facets.discount_base)

Decay without touching every value. A weight added at time t is stored as w * 2^((t - anchor) /
half_life), with `anchor` the profile's reference time. Shares do not depend on when they are
read (every stored weight decays by the same factor), so an update adds to one value per
attribute and never rescales the others; only when the newest factor grows past 2^30 are the
weights brought back to a new anchor (once every 30 half-lives). Each attribute keeps its
`MAX_VALUES` heaviest values; the weight of a value pushed out stays in the attribute's
total, so the shares of the values kept stay honest.

Price bands are relative: an item's band is the fifth of its category's prices it falls in
(budget ... premium), so "mid" means mid-priced for running shoes and for treadmills alike,
and a user's band profile is their usual spend in those terms.

Discount sensitivity compares the discounted share of the shopper's weight, s, with the share
of discounted items in the catalog, b: sensitivity = s(1 - b) / (s(1 - b) + (1 - s)b), 0.5
when the shopper meets discounts as often as the catalog has them, towards 1 when they go for
discounted items, towards 0 when they avoid them. Two pseudo-events at the catalog's share
keep one click from making anyone fully sensitive.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from nextbest.events.schema import Item

# The attributes of a profile, in storage order. `category` is the full path; `category_1`
# and `category_2` its first one and two levels.
ATTRIBUTES = ("brand", "category_1", "category_2", "category", "price_band")
PRICE_BANDS = ("budget", "low", "mid", "high", "premium")
MIN_BAND_ITEMS = 5  # a category with fewer priced items is banded by the whole catalog's prices
MAX_VALUES = 8  # kept per attribute
ACTION_WEIGHTS: Mapping[str, float] = {
    "purchase": 5.0,
    "cart": 3.0,
    "favorite": 2.0,
    "click": 1.0,
    "view": 1.0,
    "dwell": 0.5,
}  # other types (remove-from-cart, search, keyword-click) leave the profile as it is
# A user's half-life was chosen on a validation shop (demo shop seed 8, 3M events; the
# sweep is in docs/affinity.md): six hours beat 12 hours, a day and three days at predicting
# the next purchase's brand and category. Shares do not change while nobody acts, so a user
# back after weeks finds the profile of their last visits, the latest weighing most.
USER_HALF_LIFE = 6 * 3_600.0
SESSION_HALF_LIFE = 10 * 60.0  # a session's intent drifts within minutes
RESCALE_EXPONENT = 30.0
PRIOR_EVENTS = 2.0  # pseudo-events at the catalog's discounted share

_MAGIC = b"AF2"
# magic, anchor, rebuilt_through, discounted, priced, events, values kept per attribute
_HEAD = struct.Struct("<3sdQddI" + "B" * len(ATTRIBUTES))


@dataclass(frozen=True, slots=True)
class Facets:
    """What a profile takes of one item: a value per attribute (None: unknown) and whether
    it is discounted (None: no price known)."""

    values: tuple[str | None, ...]  # in ATTRIBUTES order
    discounted: bool | None


@dataclass
class ItemFacets:
    """Facets by item id, built from the catalog; `discount_base`: its discounted share."""

    by_item: dict[str, Facets]
    discount_base: float

    def get(self, item_id: str) -> Facets | None:
        return self.by_item.get(item_id)

    def __len__(self) -> int:
        return len(self.by_item)

    @classmethod
    def build(cls, items: Iterable[Item]) -> ItemFacets:
        listed = list(items)
        bands = price_bands(listed)
        priced = [item for item in listed if item.price is not None]
        discounted = sum(1 for item in priced if item.discount)
        by_item = {}
        for item in listed:
            path = item.category_path
            levels = (
                path[0] if path else None,
                " > ".join(path[:2]) if len(path) >= 2 else None,
                " > ".join(path) if path else None,
            )
            discount = None if item.price is None else bool(item.discount)
            values = (item.brand, *levels, bands.get(item.item_id))
            by_item[item.item_id] = Facets(tuple(_stored(v) for v in values), discount)
        return cls(by_item, discounted / len(priced) if priced else 0.0)


def price_bands(items: list[Item]) -> dict[str, str]:
    """Each priced item's band: the fifth of its category's prices it falls in (of the whole
    catalog's, for a category with fewer than MIN_BAND_ITEMS priced items)."""
    priced = [item for item in items if item.price is not None]
    by_category: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for item in priced:
        by_category[item.category_path].append(float(item.price or 0.0))
    everywhere = sorted(float(item.price or 0.0) for item in priced)
    ranked = {c: sorted(p) for c, p in by_category.items() if len(p) >= MIN_BAND_ITEMS}
    bands = {}
    for item in priced:
        prices = ranked.get(item.category_path, everywhere)
        below = bisect_left(prices, float(item.price or 0.0))
        bands[item.item_id] = PRICE_BANDS[min(len(PRICE_BANDS) - 1, 5 * below // len(prices))]
    return bands


def _stored(value: str | None) -> str | None:
    """A value as profiles store it: NUL separates values in their bytes."""
    return value.replace("\0", "") or None if value is not None else None


@dataclass
class Affinity:
    """One shopper's profile (a user's, or a session's)."""

    anchor: float = 0.0
    rebuilt_through: int = 0  # a profile rebuilt from the log read it up to this position
    discounted: float = 0.0
    priced: float = 0.0
    events: int = 0  # item events counted (not decayed): how far to trust the discount share
    totals: list[float] = field(default_factory=lambda: [0.0] * len(ATTRIBUTES))
    weights: list[dict[str, float]] = field(default_factory=lambda: [{} for _ in ATTRIBUTES])

    @property
    def empty(self) -> bool:
        return self.priced == 0.0 and not any(self.totals)

    def add(self, facets: Facets, action: str, time: float, half_life: float) -> bool:
        """Count one event on an item with these facets; False if its type counts nothing."""
        weight = ACTION_WEIGHTS.get(action)
        if weight is None:
            return False
        if self.empty:
            self.anchor = time
        exponent = (time - self.anchor) / half_life
        if exponent > RESCALE_EXPONENT:
            self._rescale(2.0**-exponent)
            self.anchor, exponent = time, 0.0
        scaled = weight * 2.0 ** max(exponent, -RESCALE_EXPONENT)
        totals, weights = self.totals, self.weights
        for index, value in enumerate(facets.values):
            if value is None:
                continue
            totals[index] += scaled
            kept = weights[index]
            kept[value] = kept.get(value, 0.0) + scaled
            if len(kept) > MAX_VALUES:
                del kept[min(kept, key=kept.__getitem__)]
        self.events += 1
        if facets.discounted is not None:
            self.priced += scaled
            if facets.discounted:
                self.discounted += scaled
        return True

    def _rescale(self, factor: float) -> None:
        self.discounted *= factor
        self.priced *= factor
        self.totals = [total * factor for total in self.totals]
        self.weights = [{v: w * factor for v, w in kept.items()} for kept in self.weights]

    def scores(self, attribute: str) -> dict[str, float]:
        """Every kept value's affinity in [0, 1]."""
        index = ATTRIBUTES.index(attribute)
        total = self.totals[index]
        if total <= 0.0:
            return {}
        return {value: weight / total for value, weight in self.weights[index].items()}

    def top(self, attribute: str, n: int = 5) -> list[tuple[str, float]]:
        ranked = sorted(self.scores(attribute).items(), key=lambda pair: (-pair[1], pair[0]))
        return ranked[:n]

    def discount_sensitivity(self, base: float) -> float:
        """0.5 = meets discounts as often as the catalog has them; see the module's text."""
        if not 0.0 < base < 1.0:
            return 0.5
        trust = self.events / (self.events + PRIOR_EVENTS)
        share = self.discounted / self.priced if self.priced > 0.0 else base
        share = trust * share + (1 - trust) * base  # the pseudo-events at the catalog's share
        leaning = share * (1 - base)
        return leaning / (leaning + (1 - share) * base)


def encode(profile: Affinity) -> bytes:
    """The profile as bytes: a head, the counts of values kept per attribute, every weight as
    float64 (totals first), then the values as one NUL-separated text (one split decodes
    them all: a per-value loop would cost more than the update it carries)."""
    counts = [len(kept) for kept in profile.weights]
    head = _HEAD.pack(
        _MAGIC,
        profile.anchor,
        profile.rebuilt_through,
        profile.discounted,
        profile.priced,
        profile.events,
        *counts,
    )
    weights = array("d", profile.totals)
    names: list[str] = []
    for kept in profile.weights:
        weights.extend(kept.values())
        names.extend(kept)
    return head + weights.tobytes() + "\0".join(names).encode()


def decode(data: bytes | None) -> Affinity:
    """The profile in `data`; an empty one for None, b"" or a record of another format.
    ValueError if `data` is damaged."""
    if not data or data[:3] != _MAGIC:
        return Affinity()
    if len(data) < _HEAD.size:
        raise ValueError(f"an affinity profile of {len(data)} bytes is cut short")
    _, anchor, rebuilt_through, discounted, priced, events, *counts = _HEAD.unpack_from(data, 0)
    n_weights = len(ATTRIBUTES) + sum(counts)
    end = _HEAD.size + 8 * n_weights
    if len(data) < end:
        raise ValueError(f"an affinity profile of {len(data)} bytes is cut short")
    weights = array("d")
    weights.frombytes(data[_HEAD.size : end])
    names = data[end:].decode(errors="replace").split("\0") if end < len(data) else []
    kept, offset = [], 0
    values = weights[len(ATTRIBUTES) :]
    for count in counts:
        kept.append(
            dict(zip(names[offset : offset + count], values[offset : offset + count], strict=True))
        )
        offset += count
    totals = list(weights[: len(ATTRIBUTES)])
    return Affinity(anchor, rebuilt_through, discounted, priced, events, totals, kept)


def describe(profile: Affinity, base: float, n: int = 5) -> dict[str, object]:
    """The profile as the API answers it: the top `n` values per attribute, and the
    discount sensitivity."""
    answer: dict[str, object] = {
        attribute: [{"value": v, "score": round(s, 4)} for v, s in profile.top(attribute, n)]
        for attribute in ATTRIBUTES
    }
    answer["discount_sensitivity"] = round(profile.discount_sensitivity(base), 4)
    return answer
