"""The demo shop's settings: a few sizes, a seed, and how strongly shoppers' habits show.

The defaults make the embedded dataset every part of nextbest is shown on: one million events
over 45 days of a shop with 4,000 items and 10,000 registered users (about nine sessions each)
beside anonymous visitors. The fixed world (categories, complements, brands) is in
`taxonomy.py`; the habits below are the cross-session behaviour a single session cannot show,
each one a knob so its effect can be measured by turning it off.
"""

from __future__ import annotations

from dataclasses import dataclass

# 2024-03-04 00:00 UTC, a Monday: the period starts at a week boundary.
DEFAULT_START = 1_709_510_400.0

MIN_ITEMS = 500  # enough for a handful of items in each of the ~70 leaf categories
MAX_USERS = 1_000_000  # users' state is a dense [n_users, n_leaves] float32 table


@dataclass(frozen=True)
class DemoShopConfig:
    """How big a demo shop to generate, and from which seed.

    The same config always gives the same shop, byte for byte.
    """

    seed: int = 7
    n_events: int = 1_000_000  # exactly this many events, searches included
    n_items: int = 4_000
    n_users: int = 10_000  # registered users; anonymous visitors come on top
    days: int = 45  # length of the simulated period
    test_days: int = 2  # sessions starting in the last `test_days` days form the test split
    anonymous_share: float = 0.4  # share of sessions without a user_id
    start: float = DEFAULT_START  # Unix time of the period's first second (UTC)
    # A returning user whose last visit researched a leaf category without buying goes back to
    # it with this probability (times a factor by kind: durables are researched longest).
    research_share: float = 0.7
    # ... and there, this share of the views reopens items compared on earlier visits.
    research_revisit: float = 0.5
    # Bonus (a log-odds scale) for a user's favourite brands when choosing among items; the
    # brand of the item just seen gets 1.2, so above that a user's brand outlasts the session.
    brand_loyalty: float = 2.0
    # Share of sessions that open on a bestseller or a deal of the day from the home page
    # before their intent shows.
    teaser_share: float = 0.2
    # A seasonal need (taxonomy.SEASON_LEAVES, across top categories): in the period's last
    # `season_days`, this share of new sessions starts on one of its leaves. 0: no season (the
    # default shop's log does not change with `season_days` then).
    season_share: float = 0.0
    season_days: int = 7

    def __post_init__(self) -> None:
        _check_int("seed", self.seed, 0, 2**63 - 1)
        _check_int("n_events", self.n_events, 1_000, 200_000_000)
        _check_int("n_items", self.n_items, MIN_ITEMS, 5_000_000)
        _check_int("n_users", self.n_users, 1, MAX_USERS)
        _check_int("days", self.days, 2, 3_650)
        _check_int("test_days", self.test_days, 1, self.days - 1)
        _check_float("anonymous_share", self.anonymous_share, 0.0, 1.0)
        _check_float("start", self.start, 0.0, 4_102_444_800.0)  # up to the year 2100
        _check_float("research_share", self.research_share, 0.0, 1.0)
        _check_float("research_revisit", self.research_revisit, 0.0, 1.0)
        _check_float("brand_loyalty", self.brand_loyalty, 0.0, 10.0)
        _check_float("teaser_share", self.teaser_share, 0.0, 1.0)
        _check_float("season_share", self.season_share, 0.0, 1.0)
        _check_int("season_days", self.season_days, 1, self.days)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"DemoShopConfig.{name}={value!r}: must be an integer in [{low}, {high}]")


def _check_float(name: str, value: object, low: float, high: float) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high
    if not ok:
        raise ValueError(f"DemoShopConfig.{name}={value!r}: must be a number in [{low}, {high}]")
