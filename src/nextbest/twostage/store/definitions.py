"""Every feature of the store, defined once as an aggregation over the event log.

A feature belongs to an entity (`item`: keyed by item_id, `user`: by user_id, `pair`: by
`pair_key(anchor, item)`, an item seen after another in a session) and is one of:

    count       the entity's events of some types in the `days` days before the day (for a
                pair: the sessions in which the anchor had an event and the item an event of
                those types, both on the same day)
    active_days the days among those with at least one event of the entity
    ratio       one count over another of the same entity (NaN when the second is 0)
    days_since  days from the entity's first (or last) event ever to the day's start

`offline.py` computes these for each day; `online.py` serves the latest day's values. Both
fill an entity without a row with the feature's `default` (`fill_missing`), so a candidate
the store has never seen reads the same offline and online. This module imports nothing
heavy: the online reader (and a benchmark in another environment) import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Entity = Literal["item", "user", "pair"]
Kind = Literal["count", "active_days", "ratio", "days_since_first", "days_since_last"]
ENTITY_KEYS: dict[str, str] = {"item": "item_id", "user": "user_id", "pair": "pair_id"}
SECONDS_PER_DAY = 86_400
VIEWS = ("view", "click")  # what a shop reports as looking at an item


@dataclass(frozen=True)
class Feature:
    name: str  # "item.views_7d": the entity, a dot, what it counts
    entity: Entity
    kind: Kind
    days: int | None = None  # the window before the day (count, active_days)
    types: tuple[str, ...] = ()  # event types counted (empty: every event of the entity)
    over: tuple[str, str] = ("", "")  # ratio: (numerator, denominator) feature names

    @property
    def default(self) -> float:
        """An entity without events in the window: no events (0), else unknown (NaN)."""
        return 0.0 if self.kind in ("count", "active_days") else float("nan")


def _item_features() -> list[Feature]:
    out: list[Feature] = []
    for days in (1, 7, 28):
        out += [
            Feature(f"item.views_{days}d", "item", "count", days, VIEWS),
            Feature(f"item.carts_{days}d", "item", "count", days, ("cart",)),
            Feature(f"item.purchases_{days}d", "item", "count", days, ("purchase",)),
        ]
    out += [
        Feature("item.cart_rate_28d", "item", "ratio", over=("item.carts_28d", "item.views_28d")),
        Feature(
            "item.purchase_rate_28d",
            "item",
            "ratio",
            over=("item.purchases_28d", "item.views_28d"),
        ),
        Feature("item.age_days", "item", "days_since_first"),
    ]
    return out


def _user_features() -> list[Feature]:
    return [
        Feature("user.events_28d", "user", "count", 28),
        Feature("user.views_28d", "user", "count", 28, VIEWS),
        Feature("user.purchases_28d", "user", "count", 28, ("purchase",)),
        Feature("user.active_days_28d", "user", "active_days", 28),
        Feature("user.days_since_last", "user", "days_since_last"),
    ]


def _pair_features() -> list[Feature]:
    """Co-occurrence of an anchor (the session's latest item when the ranker asks) and a
    candidate: counts only, a pair has no first or last event of its own."""
    return [
        Feature("pair.sessions_7d", "pair", "count", 7),
        Feature("pair.sessions_28d", "pair", "count", 28),
        Feature("pair.carts_28d", "pair", "count", 28, ("cart",)),
        Feature("pair.purchases_28d", "pair", "count", 28, ("purchase",)),
    ]


FEATURES: tuple[Feature, ...] = (*_item_features(), *_user_features(), *_pair_features())
MAX_PAIR_ITEMS = 30  # a session's latest distinct items of a day that form its pairs


def pair_key(anchor: str, item: str) -> str:
    """The id of the pair (anchor, item): the anchor's length, a colon, both ids. Any two ids
    make a distinct key (no separator an id could hold), and it reads the same in Parquet,
    Redis and Python."""
    return f"{len(anchor)}:{anchor}{item}"


def entity_ids(
    entity: str, items: Sequence[str], users: Sequence[str | None], anchors: Sequence[str | None]
) -> list[str]:
    """The store id each candidate row reads for `entity`: the row's item, its case's user,
    or the pair (its case's anchor, its item). A row without a user or an anchor reads ""
    (no entity has an empty id: every read gives the defaults). Training and serving both
    call this, so the two cannot key a feature differently."""
    if entity == "item":
        return [str(i) for i in items]
    if entity == "user":
        return ["" if u is None else str(u) for u in users]
    if entity == "pair":
        return [
            "" if a is None else pair_key(str(a), str(i))
            for a, i in zip(anchors, items, strict=True)
        ]
    raise ValueError(f"unknown entity {entity!r}; known: {sorted(ENTITY_KEYS)}")


def features_of(entity: str, features: Sequence[Feature] = FEATURES) -> list[Feature]:
    return [f for f in features if f.entity == entity]


def entities(features: Sequence[Feature] = FEATURES) -> list[str]:
    """The entities with at least one feature, in definition order."""
    return list(dict.fromkeys(f.entity for f in features))


def by_name(names: Sequence[str], features: Sequence[Feature] = FEATURES) -> list[Feature]:
    """The features called `names`, in that order; ValueError names an unknown one."""
    known = {f.name: f for f in features}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown}; known: {sorted(known)}")
    return [known[n] for n in names]


def of_entities_of(names: Sequence[str]) -> list[Feature]:
    """Every feature of the entities the features `names` belong to: what computing them
    needs (a ratio reads two counts)."""
    kinds = entities(by_name(names))
    return [f for f in FEATURES if f.entity in kinds]


def horizon(entity: str, features: Sequence[Feature] = FEATURES) -> int:
    """The longest window of an entity's features, in days: an entity with no event in it
    has no row in a day's partition (every windowed value is its default)."""
    return max((f.days or 0 for f in features_of(entity, features)), default=0) or 1


def fill_missing(values: np.ndarray, features: Sequence[Feature]) -> np.ndarray:
    """`values` [rows, len(features)] with each feature's default where a row had no entry
    (NaN from an entity the day's partition does not hold). In place; returns it."""
    for column, feature in enumerate(features):
        if feature.default == 0.0:
            np.nan_to_num(values[:, column], copy=False, nan=0.0)
    return values
