"""Who visits and when: registered users with lasting tastes, and the plan of every session.

A registered user keeps the same three favourite leaf categories, two favourite brands, a
price band and a device over the whole period; how often they come is heavy-tailed. Anonymous
visitors get none of that. Session start times follow a day/night rhythm (an evening peak,
quiet nights) and a weekly one (busier weekends). Session lengths are long-tailed.

The plan fixes, before any behaviour is simulated, each session's owner, start, length and the
pauses between its events, so the total is exactly `n_events` and a user's sessions never
overlap. It also groups sessions into "waves": wave k holds every user's k-th session, so a
wave can be simulated all at once while each user's state (what they bought) still flows from
one of their sessions to the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.data.demo_shop.catalog import Catalog
from nextbest.data.demo_shop.config import DemoShopConfig
from nextbest.data.demo_shop.sampling import (
    FloatArray,
    IntArray,
    block_cumsum,
    sample_blocks,
    sample_weighted,
)

DAY = 86_400.0
# Share of sessions starting in each hour (UTC), 00h..23h: quiet nights, a lunch bump, an
# evening peak at 19h-21h.
HOUR_WEIGHTS = np.array(
    [0.6, 0.35, 0.2, 0.15, 0.15, 0.25, 0.5, 0.9, 1.2, 1.4, 1.5, 1.6,
     1.8, 1.7, 1.5, 1.5, 1.6, 1.9, 2.4, 2.9, 3.2, 3.0, 2.2, 1.2]
)  # fmt: skip
WEEKDAY_WEIGHTS = np.array([1.0, 0.95, 0.95, 1.0, 1.05, 1.2, 1.25])  # Monday..Sunday
LENGTH_LOG_MEAN, LENGTH_LOG_SIGMA, MAX_LENGTH = 1.25, 1.0, 100  # 1 + floor(lognormal): mean ~6
GAP_MEDIAN, GAP_SIGMA, MIN_GAP, MAX_GAP = 35.0, 0.9, 2.0, 600.0  # seconds between events
MIN_SESSION_GAP = 1_800.0  # a user's next session starts at least 30 min after the last ended
ACTIVITY_SIGMA, ACTIVITY_CAP = 1.0, 8.0  # visits per user: lognormal, capped at 8x the mean
N_FAVOURITES, N_FAVOURITE_BRANDS = 3, 2
FAVOURITE_SAME_TOP = 0.6  # a further favourite leaf shares the first one's top category
PRICE_LEVEL_SIGMA = 0.4  # a user's taste in log price relative to the category median
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_CUM = block_cumsum(np.array([0.55, 0.35, 0.10]))
DEVICE_LOYALTY = 0.85


@dataclass(frozen=True)
class Users:
    favourite_leaves: IntArray  # [U, 3]
    favourite_brands: IntArray  # [U, 2]
    price_level: FloatArray  # [U]
    device: IntArray  # [U] index into DEVICES


@dataclass(frozen=True)
class SessionPlan:
    """Sessions in order of their start; events of session s are offsets[s]:offsets[s + 1]."""

    start: FloatArray  # [S] seconds since the period start
    offsets: IntArray  # [S + 1]
    owner: IntArray  # [S] user index, -1 for an anonymous visitor
    wave: IntArray  # [S] the owner's count of earlier sessions (0 for anonymous)
    device: IntArray  # [S]
    gaps: FloatArray  # [E] planned seconds since the previous event (0 at a session start)

    @property
    def length(self) -> IntArray:
        return np.diff(self.offsets)


def draw_users(n_users: int, catalog: Catalog, rng: np.random.Generator) -> Users:
    n_leaves = catalog.n_leaves
    tops = [leaf.top for leaf in catalog.leaves]  # leaves of a top category are contiguous
    top_start = np.array([tops.index(t) for t in tops], dtype=np.int64)  # [L]
    top_end = np.array([n_leaves - tops[::-1].index(t) for t in tops], dtype=np.int64)  # [L]
    first = sample_weighted(catalog.leaf_cum, n_users, rng)  # [U]
    favourites = np.empty((n_users, N_FAVOURITES), dtype=np.int64)
    favourites[:, 0] = first
    for k in range(1, N_FAVOURITES):
        width = top_end[first] - top_start[first]
        near = top_start[first] + np.floor(rng.random(n_users) * width).astype(np.int64)
        anywhere = sample_weighted(catalog.leaf_cum, n_users, rng)
        favourites[:, k] = np.where(rng.random(n_users) < FAVOURITE_SAME_TOP, near, anywhere)
    # A favourite brand is the brand of a popular item in a favourite leaf.
    leaves = favourites[:, :N_FAVOURITE_BRANDS].reshape(-1)  # [U * 2]
    items = sample_blocks(
        catalog.item_cum, catalog.leaf_start[leaves], catalog.leaf_end[leaves], 1, rng
    )
    return Users(
        favourite_leaves=favourites,
        favourite_brands=catalog.item_brand[items[:, 0]].reshape(n_users, N_FAVOURITE_BRANDS),
        price_level=rng.normal(0.0, PRICE_LEVEL_SIGMA, n_users),
        device=sample_weighted(DEVICE_CUM, n_users, rng),
    )


def plan_sessions(config: DemoShopConfig, users: Users, rng: np.random.Generator) -> SessionPlan:
    """Draft more sessions than needed, drop clashing ones, keep a random subset of exact size."""
    n_users = len(users.price_level)
    activity = rng.lognormal(0.0, ACTIVITY_SIGMA, n_users)
    activity_cum = block_cumsum(np.minimum(activity, ACTIVITY_CAP * activity.mean()))
    n_draft = int(config.n_events / 5.0) + 64
    for _ in range(4):
        owner, start, offsets, gaps = _draft(config, n_draft, activity_cum, rng)
        alive = _without_clashes(owner, start, offsets, gaps)
        length = np.diff(offsets)
        if int(length[alive].sum()) >= config.n_events:
            break
        n_draft *= 2
    else:  # so many sessions per user that they cannot all fit in the period
        raise ValueError(
            f"DemoShopConfig: n_users={config.n_users} cannot make n_events={config.n_events} "
            f"in days={config.days} without overlapping sessions; raise n_users or days"
        )
    # A random subset of the sessions, the last one cut short, gives exactly n_events.
    order = rng.permutation(np.flatnonzero(alive))
    total = np.cumsum(length[order])
    n_keep = int(np.searchsorted(total, config.n_events)) + 1
    length = length.copy()
    length[order[n_keep - 1]] -= int(total[n_keep - 1]) - config.n_events
    keep = np.sort(order[:n_keep])
    keep = keep[np.argsort(start[keep], kind="stable")]
    new_length = length[keep]  # [S]
    new_offsets = np.concatenate([[0], np.cumsum(new_length)]).astype(np.int64)
    within = np.arange(config.n_events) - np.repeat(new_offsets[:-1], new_length)  # [E]
    kept_owner = owner[keep]
    device = sample_weighted(DEVICE_CUM, len(keep), rng)
    loyal = (kept_owner >= 0) & (rng.random(len(keep)) < DEVICE_LOYALTY)
    device[loyal] = users.device[kept_owner[loyal]]
    return SessionPlan(
        start=start[keep],
        offsets=new_offsets,
        owner=kept_owner,
        wave=_waves(kept_owner),
        device=device,
        gaps=gaps[np.repeat(offsets[keep], new_length) + within],
    )


def _draft(
    config: DemoShopConfig, n: int, activity_cum: FloatArray, rng: np.random.Generator
) -> tuple[IntArray, FloatArray, IntArray, FloatArray]:
    """[n] owners, [n] starts, [n + 1] offsets and [E] gaps of n candidate sessions."""
    anonymous = rng.random(n) < config.anonymous_share
    owner = np.where(anonymous, -1, sample_weighted(activity_cum, n, rng))
    day_weights = WEEKDAY_WEIGHTS[np.arange(config.days) % 7]  # the period starts on a Monday
    day = sample_weighted(block_cumsum(day_weights), n, rng)
    hour = sample_weighted(block_cumsum(HOUR_WEIGHTS), n, rng)
    start = day * DAY + hour * 3_600.0 + rng.random(n) * 3_600.0
    raw = np.floor(rng.lognormal(LENGTH_LOG_MEAN, LENGTH_LOG_SIGMA, n)).astype(np.int64)
    length = np.minimum(1 + raw, MAX_LENGTH)
    offsets = np.concatenate([[0], np.cumsum(length)]).astype(np.int64)
    gaps = np.clip(rng.lognormal(np.log(GAP_MEDIAN), GAP_SIGMA, offsets[-1]), MIN_GAP, MAX_GAP)
    gaps[offsets[:-1]] = 0.0
    return owner, start, offsets, gaps


def _without_clashes(
    owner: IntArray, start: FloatArray, offsets: IntArray, gaps: FloatArray
) -> np.ndarray:
    """[S] bool: drop a user's session that starts before their previous one has ended."""
    duration = np.add.reduceat(gaps, offsets[:-1])  # [S] an upper bound: steps only shorten
    alive = np.ones(len(owner), dtype=bool)
    while True:
        idx = np.flatnonzero(alive & (owner >= 0))
        idx = idx[np.lexsort((start[idx], owner[idx]))]
        before, after = idx[:-1], idx[1:]
        clash = (owner[after] == owner[before]) & (
            start[after] < start[before] + duration[before] + MIN_SESSION_GAP
        )
        if not clash.any():
            return alive
        alive[after[clash]] = False


def _waves(owner: IntArray) -> IntArray:
    """[S] for sessions in time order: how many earlier sessions the same user had."""
    order = np.lexsort((np.arange(len(owner)), owner))  # by owner, then time
    sorted_owner = owner[order]
    first = np.concatenate([[True], sorted_owner[1:] != sorted_owner[:-1]])
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(owner)), 0))
    wave = np.empty(len(owner), dtype=np.int64)
    wave[order] = np.arange(len(owner)) - group_start
    return np.where(owner >= 0, wave, 0)
