"""Where a shopper's interest goes: a leaf category per step, for every active session at once.

A session starts with an intent (a registered user's favourite, a consumable that is due, a
complement of something just bought, the leaf of an unfinished research, or any popular leaf)
and drifts from it: mostly it stays, sometimes it moves to a complement, a sibling under the
same parent, back to where the session began, or to another taste. A leaf whose durable the
user already bought is blocked; interest headed there moves on to that leaf's complements
instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.data.demo_shop.catalog import Catalog
from nextbest.data.demo_shop.config import DemoShopConfig
from nextbest.data.demo_shop.sampling import (
    BoolArray,
    FloatArray,
    IntArray,
    block_cumsum,
    sample_padded,
    sample_weighted,
)
from nextbest.data.demo_shop.taxonomy import SEASON_LEAVES

DAY = 86_400.0
P_FAVOURITE = 0.75  # a registered user's intent is one of their favourite leaves
FAVOURITE_CUM = block_cumsum(np.array([0.5, 0.3, 0.2]))
P_REBUY = 0.9  # a due consumable brings a user back for it
REBUY_FROM = 0.85  # ... from this fraction of its cycle on
P_AFTER_DURABLE = 0.5  # within AFTER_DURABLE of buying a durable, a session seeks complements
AFTER_DURABLE = 21 * DAY
DURABLE_BLOCK = 120 * DAY  # no second treadmill (not even browsing) for this long
SATED = 30 * DAY  # after buying a regular item, its leaf is rarely carted again for this long

# Moves between steps: stay, complement, sibling, back to the session's first intent, taste.
STAY, COMPLEMENT, SIBLING, BACK, TASTE = range(5)
VIEW_MOVES = block_cumsum(np.array([0.80, 0.07, 0.06, 0.03, 0.04]))
SEARCH_MOVES = block_cumsum(np.array([0.45, 0.20, 0.20, 0.05, 0.10]))


@dataclass
class UserState:
    """What the users bought so far; row n_users stands for every anonymous visitor.

    Writes go to registered users' rows only, so the anonymous row never blocks anything.
    """

    block_until: np.ndarray  # [U + 1, L] float32 seconds: leaf blocked (durable bought) until
    sated_until: np.ndarray  # [U + 1, L] float32 seconds: leaf rarely carted (just bought) until
    durable_leaf: IntArray  # [U + 1] the leaf of the last durable bought, -1 if none
    durable_time: FloatArray  # [U + 1]
    consumable_item: IntArray  # [U + 1] the last consumable bought, -1 if none
    consumable_time: FloatArray  # [U + 1]

    @classmethod
    def empty(cls, n_users: int, n_leaves: int) -> UserState:
        return cls(
            block_until=np.full((n_users + 1, n_leaves), -1.0, dtype=np.float32),
            sated_until=np.full((n_users + 1, n_leaves), -1.0, dtype=np.float32),
            durable_leaf=np.full(n_users + 1, -1, dtype=np.int64),
            durable_time=np.zeros(n_users + 1),
            consumable_item=np.full(n_users + 1, -1, dtype=np.int64),
            consumable_time=np.zeros(n_users + 1),
        )


def complement_of(catalog: Catalog, leaves: IntArray, rng: np.random.Generator) -> IntArray:
    """[n] a random complement of each leaf; a sibling for leaves without complements."""
    out = sample_padded(catalog.complements, catalog.n_complements, leaves, rng)
    none = out < 0
    if none.any():
        out[none] = sibling_of(catalog, leaves[none], rng)
    return out


def sibling_of(catalog: Catalog, leaves: IntArray, rng: np.random.Generator) -> IntArray:
    """[n] a random other leaf under the same parent (the leaf itself if it has none)."""
    out = sample_padded(catalog.siblings, catalog.n_siblings, leaves, rng)
    return np.where(out >= 0, out, leaves)


def taste_leaf(catalog: Catalog, favourites: IntArray, rng: np.random.Generator) -> IntArray:
    """[n] a leaf the shopper likes: a favourite (registered users, [n, 3]; -1 rows for the
    anonymous) or else any leaf by the shop's traffic."""
    n = len(favourites)
    out = sample_weighted(catalog.leaf_cum, n, rng)
    which = sample_weighted(FAVOURITE_CUM, n, rng)
    liked = favourites[np.arange(n), which]  # [n]
    use = (liked >= 0) & (rng.random(n) < P_FAVOURITE)
    out[use] = liked[use]
    return out


def drift(
    catalog: Catalog,
    moves: FloatArray,
    leaf: IntArray,
    home: IntArray,
    favourites: IntArray,
    jump: BoolArray,
    rng: np.random.Generator,
) -> IntArray:
    """[n] the next leaf; sessions with `jump` set (a durable was just bought) take a complement."""
    move = np.minimum(np.searchsorted(moves, rng.random(len(leaf)) * moves[-1], side="right"), 4)
    move[jump] = COMPLEMENT
    out = leaf.copy()
    if (m := move == COMPLEMENT).any():
        out[m] = complement_of(catalog, leaf[m], rng)
    if (m := move == SIBLING).any():
        out[m] = sibling_of(catalog, leaf[m], rng)
    if (m := move == BACK).any():
        out[m] = home[m]
    if (m := move == TASTE).any():
        out[m] = taste_leaf(catalog, favourites[m], rng)
    return out


def unblocked(
    catalog: Catalog,
    state: UserState,
    rows: IntArray,
    t: FloatArray,
    session_block: IntArray,
    leaves: IntArray,
    rng: np.random.Generator,
) -> IntArray:
    """[n] `leaves` with blocked ones (a durable bought, by the user or in this session)
    turned to a complement, or failing that to a leaf that is never blocked."""
    out = leaves.copy()
    for attempt in range(2):
        blocked = (state.block_until[rows, out] > t) | (out == session_block)
        if not blocked.any():
            return out
        if attempt == 0:
            out[blocked] = complement_of(catalog, out[blocked], rng)
        else:
            out[blocked] = sample_weighted(catalog.open_leaf_cum, int(blocked.sum()), rng)
    return out


def start_intents(
    catalog: Catalog,
    state: UserState,
    rows: IntArray,
    favourites: IntArray,
    back: IntArray,
    t: FloatArray,
    rng: np.random.Generator,
) -> tuple[IntArray, IntArray]:
    """[n] each new session's first leaf, and [n] the consumable it came to rebuy (-1 if not).

    `back` is the leaf of a research the session goes back to (-1 if none, see `research.py`).
    """
    n = len(rows)
    leaf = taste_leaf(catalog, favourites, rng)
    leaf = np.where(back >= 0, back, leaf)
    recent = (
        (state.durable_leaf[rows] >= 0)
        & (t - state.durable_time[rows] < AFTER_DURABLE)
        & (rng.random(n) < P_AFTER_DURABLE)
    )
    leaf[recent] = complement_of(catalog, state.durable_leaf[rows[recent]], rng)
    item = state.consumable_item[rows]  # [n]
    item_leaf = catalog.item_leaf[np.maximum(item, 0)]
    due = (
        (item >= 0)
        & (t - state.consumable_time[rows] >= REBUY_FROM * catalog.leaf_cycle[item_leaf])
        & (rng.random(n) < P_REBUY)
    )
    leaf[due] = item_leaf[due]
    leaf = unblocked(catalog, state, rows, t, np.full(n, -1), leaf, rng)
    return leaf, np.where(due & (leaf == item_leaf), item, -1)


def seasonal_intents(
    catalog: Catalog,
    state: UserState,
    config: DemoShopConfig,
    rows: IntArray,
    leaf: IntArray,
    back: IntArray,
    rebuy: IntArray,
    t: FloatArray,
    rng: np.random.Generator,
) -> IntArray:
    """[n] `leaf`, with a share (`config.season_share`) of the sessions that start in the
    season (the period's last `config.season_days`) turned to a seasonal leaf, unless they
    go back to a research or rebuy a consumable."""
    n = len(rows)
    season_start = (config.days - config.season_days) * DAY  # `t` counts from the period start
    seasonal = (t >= season_start) & (back < 0) & (rebuy < 0)
    seasonal &= rng.random(n) < config.season_share
    index = {leaf.name: k for k, leaf in enumerate(catalog.leaves)}
    leaves = np.array([index[name] for name in SEASON_LEAVES], dtype=np.int64)
    out = leaf.copy()
    out[seasonal] = leaves[rng.integers(0, len(leaves), int(seasonal.sum()))]
    return unblocked(catalog, state, rows, t, np.full(n, -1), out, rng)
