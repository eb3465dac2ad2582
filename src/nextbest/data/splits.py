"""Train/test splits that never cut a session, as the evaluation protocol requires.

A model is judged on whole sessions it has never seen: `split_by_time` holds out the sessions
that end in the last days of the data (GRU4Rec's protocol), `split_users_last_session` holds out
each returning user's last session (HGRU4Rec's). `drop_unseen_items` then removes what no model
trained on the training part could rank. All functions keep the input's row order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from nextbest.data.stats import item_events, session_users

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class Split:
    """Two disjoint sets of whole sessions.

    `cutoff` is the time split's boundary: test sessions end at or after it, training sessions
    before it (None for splits by user, or when the data is empty).
    """

    train: pl.DataFrame
    test: pl.DataFrame
    cutoff: float | None = None

    @property
    def n_train_events(self) -> int:
        return self.train.height

    @property
    def n_test_events(self) -> int:
        return self.test.height

    @property
    def n_train_sessions(self) -> int:
        return self.train["session_id"].n_unique()

    @property
    def n_test_sessions(self) -> int:
        return self.test["session_id"].n_unique()


def split_by_time(events: pl.DataFrame, test_days: float = 1.0) -> Split:
    """Sessions whose last event lies in the last `test_days` days of the data go to test.

    "The last days" are measured back from the latest timestamp in `events`: a session is a
    test session when its last event is at or after `max(timestamp) - test_days * 86400`.
    """
    _check_days("test_days", test_days)
    latest = events.select(pl.col("timestamp").max()).item()
    if latest is None:
        return Split(train=events, test=events.clear())
    cutoff = float(latest) - test_days * SECONDS_PER_DAY
    is_test = pl.col("timestamp").max().over("session_id") >= cutoff
    marked = events.with_columns(is_test.alias("_test"))
    return Split(
        train=marked.filter(~pl.col("_test")).drop("_test"),
        test=marked.filter(pl.col("_test")).drop("_test"),
        cutoff=cutoff,
    )


def train_valid_split(train: pl.DataFrame, valid_days: float = 1.0) -> Split:
    """The time split applied within the training data, for tuning without touching test.

    The returned `Split.test` is the validation part; run `drop_unseen_items` on it against the
    returned `Split.train`, just as for the real test set.
    """
    _check_days("valid_days", valid_days)
    return split_by_time(train, test_days=valid_days)


def drop_unseen_items(
    test: pl.DataFrame, train: pl.DataFrame, min_session_length: int = 2
) -> pl.DataFrame:
    """Remove test item events whose item never occurs in `train`, then too-short sessions.

    No model can rank an item it never saw, so the protocol drops such events; a session left
    with fewer than `min_session_length` item events has nothing to predict from and goes too.
    Item-less events (searches) are kept in the surviving sessions.
    """
    if min_session_length < 1:
        raise ValueError(f"min_session_length must be >= 1, got {min_session_length!r}")
    seen = train.filter(item_events())["item_id"].unique().implode()
    kept = test.filter(~item_events() | pl.col("item_id").is_in(seen))
    return kept.filter(item_events().sum().over("session_id") >= min_session_length)


def split_last_sessions(events: pl.DataFrame, share: float = 0.1) -> Split:
    """The latest-starting `share` of sessions go to test, whole; the rest stay in train.

    For data whose timestamps are running numbers rather than seconds (the public diginetica
    and retailrocket splits), where "the last N days" means nothing. Test items unseen in the
    training part are dropped as the protocol requires.
    """
    if isinstance(share, bool) or not 0.0 < share < 1.0:
        raise ValueError(f"share must be a fraction between 0 and 1, got {share!r}")
    starts = (
        events.group_by("session_id")
        .agg(pl.col("timestamp").min().alias("_start"))
        .sort(["_start", "session_id"])
    )
    n_test = max(1, round(starts.height * share)) if starts.height > 1 else 0
    test_ids = starts["session_id"].tail(n_test).implode()
    is_test = pl.col("session_id").is_in(test_ids)
    train = events.filter(~is_test)
    test = drop_unseen_items(events.filter(is_test), train)
    return Split(train=train, test=test)


def split_users_last_session(events: pl.DataFrame) -> Split:
    """Each user with at least two sessions gives their last session to test.

    "Last" is the session whose last event is latest (ties: the later start, then the larger
    session id). Anonymous sessions and users with a single session stay in train, so a
    model such as HGRU4Rec can warm each test user's state on that user's earlier sessions.
    """
    bounds = events.group_by("session_id").agg(
        pl.col("timestamp").max().alias("_end"), pl.col("timestamp").min().alias("_start")
    )
    owned = session_users(events).drop_nulls("user_id").join(bounds, on="session_id")
    # Sorted by time within each user, so a group's last row is that user's last session.
    last = (
        owned.sort(["user_id", "_end", "_start", "session_id"])
        .group_by("user_id", maintain_order=True)
        .agg(pl.col("session_id").last(), pl.len().alias("_sessions"))
        .filter(pl.col("_sessions") >= 2)
    )
    is_test = pl.col("session_id").is_in(last["session_id"].implode())
    return Split(train=events.filter(~is_test), test=events.filter(is_test))


def _check_days(name: str, value: float) -> None:
    """Days must be a positive, finite number (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a positive number of days, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of days, got {value!r}")
