"""From a raw event log to train/test tables a model can learn from and be judged on.

The steps, each a pure function on an event table (EVENT_SCHEMA columns, row order kept):

    sessionize                  cut each visitor's stream where they were idle > 30 minutes
    remove_noise (noise.py)     optional: bot-like sessions, over-long ones, accidental clicks
    remove_consecutive_repeats  optional: drop an item event that repeats the previous item
    filter_iteratively          drop rare items and short sessions until nothing changes
    split_by_time (splits.py)   hold out the sessions of the last day, then drop unseen items

`prepare` runs them in that order from one `PrepareConfig`; `write_prepared` writes the result
as GRU4Rec TSV files.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from nextbest.data.noise import NoiseConfig, Removed, remove_noise
from nextbest.data.splits import drop_unseen_items, split_by_time, train_valid_split
from nextbest.data.stats import item_events, session_users
from nextbest.data.tsv import write_gru4rec_tsv

logger = logging.getLogger(__name__)

StreamKey = Literal["user_or_session", "session"]


def sessionize(
    events: pl.DataFrame, gap_seconds: float = 1800.0, by: StreamKey = "user_or_session"
) -> pl.DataFrame:
    """Give every event a new session id, cutting wherever the visitor was idle too long.

    A visitor's stream is keyed by the session's user (the user_id of its earliest event that
    has one, see `stats.session_users`) and, for anonymous sessions, by the existing session_id;
    `by="session"` always uses the session_id, so existing sessions are only cut, never merged.
    A new session starts at a stream's first event and wherever the time since the previous
    event of the stream is greater than `gap_seconds` (exactly `gap_seconds` does not cut).
    Equal timestamps keep their input order. New ids are `"u:{user_id}#{n}"` or
    `"s:{session_id}#{n}"`, n = 1, 2, ... in time order: deterministic and never colliding
    between a user id and a session id that happen to be equal. Only session_id changes.
    """
    _check_positive_number("gap_seconds", gap_seconds)
    if by not in ("user_or_session", "session"):
        raise ValueError(f"by must be 'user_or_session' or 'session', got {by!r}")
    keys = _stream_keys(events, by)
    key_of_row = events.select("session_id").join(
        keys, on="session_id", how="left", maintain_order="left"
    )
    numbers = _session_numbers(key_of_row["_code"], events["timestamp"], gap_seconds)
    new_id = pl.concat_str([key_of_row["_key"], pl.lit("#"), numbers.cast(pl.String)])
    return events.with_columns(new_id.alias("session_id"))


def _session_numbers(code: pl.Series, timestamp: pl.Series, gap_seconds: float) -> pl.Series:
    """Per row, the running number (1, 2, ...) of its session within its stream `code`.

    Sorts only narrow numeric columns (stream code, time, row), which is what keeps this fast
    on millions of events; the row index makes equal timestamps keep their input order.
    """
    frame = pl.DataFrame({"_code": code, "_time": timestamp}).with_row_index("_row")
    stream_start = (pl.col("_code") != pl.col("_code").shift(1)).fill_null(True)
    starts = stream_start | (pl.col("_time").diff() > gap_seconds)
    running = starts.cast(pl.Int64).cum_sum()
    # Sessions started before this stream's first event, subtracted to restart at 1.
    offset = pl.when(stream_start).then(running - 1).forward_fill()
    return (
        frame.sort(["_code", "_time", "_row"])
        .select("_row", (running - offset).alias("_n"))
        .sort("_row")["_n"]
    )


def _stream_keys(events: pl.DataFrame, by: StreamKey) -> pl.DataFrame:
    """One row per session: `_key`, the stream it belongs to, and `_code`, that key as an int."""
    by_session = pl.lit("s:") + pl.col("session_id")
    if by == "session":
        keys = events.select("session_id").unique().with_columns(by_session.alias("_key"))
    else:
        key = pl.coalesce(pl.lit("u:") + pl.col("user_id"), by_session).alias("_key")
        keys = session_users(events).select("session_id", key)
    return keys.with_columns(_dense_code("_key").alias("_code"))


def remove_consecutive_repeats(events: pl.DataFrame) -> pl.DataFrame:
    """Drop each item event whose session's previous item event has the same item.

    Clicking the same item twice in a row (a reload, a second image) says nothing new about
    what comes next. Only item events count: in view A, search, view A the second view is
    dropped; in A, B, A nothing is. The event type is not compared, so a cart of A right
    after a view of A is dropped too. Order within a session: timestamp, then input order.
    """
    ordered = (
        events.select(
            _row_index(),
            _dense_code("session_id").alias("_session"),
            "item_id",
            "timestamp",
            item_events().alias("_is_item"),
        )
        .filter("_is_item")
        .sort(["_session", "timestamp", "_row"])
    )
    repeats = ordered.filter(
        (pl.col("_session") == pl.col("_session").shift(1))
        & (pl.col("item_id") == pl.col("item_id").shift(1))
    )["_row"]
    return events.filter(~_row_mask(events.height, repeats))


def _row_index() -> pl.Expr:
    """Each row's position in the input, to restore order or pick rows after a sort."""
    return pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row")


def _dense_code(column: str) -> pl.Expr:
    """Ids as integers (null stays null), as integer sorts and group-bys are much cheaper.

    A categorical with its own fresh categories is hash-based (unlike `rank`, which sorts the
    strings) and leaves nothing behind in Polars' global string cache.
    """
    return pl.col(column).cast(pl.Categorical(pl.Categories.random())).to_physical()


def _row_mask(n_rows: int, rows: pl.Series) -> pl.Series:
    """[n_rows] bool, True at the positions `rows`."""
    return pl.repeat(False, n_rows, eager=True).scatter(rows, True)


@dataclass(frozen=True)
class FilterReport:
    """What `filter_iteratively` did.

    `rounds` counts the passes that removed something (0: the table was already stable).
    Items are distinct item ids of item events.
    """

    rounds: int
    events_before: int
    events_after: int
    sessions_before: int
    sessions_after: int
    items_before: int
    items_after: int


def filter_iteratively(
    events: pl.DataFrame,
    min_item_support: int = 5,
    min_session_length: int = 2,
    min_user_sessions: int | None = None,
    max_user_sessions: int | None = None,
) -> tuple[pl.DataFrame, FilterReport]:
    """Repeat the filters until a pass removes nothing, so every rule holds on the result.

    One pass: drop the item events of items with fewer than `min_item_support` item events;
    drop sessions with fewer than `min_session_length` item events (with all their events);
    if a bound is given, drop the sessions of users with fewer than `min_user_sessions` or
    more than `max_user_sessions` sessions (anonymous sessions are not bounded). Dropping a
    rare item can make a session too short and dropping a session can make an item rare,
    hence the repetition; it ends because every pass that continues removes events. A
    session's user (see `stats.session_users`) is decided once, before the first pass.
    """
    _check_count("min_item_support", min_item_support)
    _check_count("min_session_length", min_session_length)
    _check_user_bounds(min_user_sessions, max_user_sessions)
    bounded = min_user_sessions is not None or max_user_sessions is not None
    codes = _filter_codes(events, with_users=bounded)
    is_item = pl.col("_item").is_not_null()
    kept, rounds = codes, 0
    while True:
        before = kept.height
        kept = kept.filter(~is_item | (pl.len().over("_item") >= min_item_support))
        kept = kept.filter(is_item.sum().over("_session") >= min_session_length)
        if bounded:
            kept = kept.filter(_user_in_bounds(min_user_sessions, max_user_sessions))
        if kept.height == before:
            break
        rounds += 1
    report = FilterReport(
        rounds=rounds,
        events_before=events.height,
        events_after=kept.height,
        sessions_before=codes["_session"].n_unique(),
        sessions_after=kept["_session"].n_unique(),
        items_before=codes["_item"].drop_nulls().n_unique(),
        items_after=kept["_item"].drop_nulls().n_unique(),
    )
    return events.filter(_row_mask(events.height, kept["_row"])), report


def _filter_codes(events: pl.DataFrame, with_users: bool) -> pl.DataFrame:
    """The narrow integer table the filter passes work on, one row per event.

    `_item` is null for events that are not item events; `_user` (only `with_users`) is the
    session's user.
    """
    codes = events.select(
        _row_index(),
        pl.when(item_events()).then(_dense_code("item_id")).alias("_item"),
        _dense_code("session_id").alias("_session"),
        "session_id",
    )
    if with_users:
        users = session_users(events).select("session_id", _dense_code("user_id").alias("_user"))
        codes = codes.join(users, on="session_id", how="left")
    return codes.drop("session_id")


def _user_in_bounds(low: int | None, high: int | None) -> pl.Expr:
    """True for anonymous events and events of users with low..high sessions."""
    in_bounds = pl.lit(value=True)
    n_sessions = pl.col("_session").n_unique().over("_user")
    if low is not None:
        in_bounds = in_bounds & (n_sessions >= low)
    if high is not None:
        in_bounds = in_bounds & (n_sessions <= high)
    return pl.col("_user").is_null() | in_bounds


@dataclass(frozen=True)
class PrepareConfig:
    """Settings of `prepare`; filter and split defaults follow GRU4Rec's preparation of RSC15.

    `min_session_length` applies to training data; test and validation sessions always need
    2 item events (the protocol's rule), whatever it is set to.
    """

    sessionize: bool = True
    gap_seconds: float = 1800.0
    remove_repeats: bool = False
    min_item_support: int = 5
    min_session_length: int = 2
    min_user_sessions: int | None = None
    max_user_sessions: int | None = None
    test_days: float = 1.0
    valid_days: float | None = None
    noise: NoiseConfig = field(default_factory=NoiseConfig)  # every rule off

    def __post_init__(self) -> None:
        _check_flag("sessionize", self.sessionize)
        _check_flag("remove_repeats", self.remove_repeats)
        _check_positive_number("gap_seconds", self.gap_seconds)
        _check_count("min_item_support", self.min_item_support)
        _check_count("min_session_length", self.min_session_length)
        _check_user_bounds(self.min_user_sessions, self.max_user_sessions)
        _check_positive_number("test_days", self.test_days)
        if self.valid_days is not None:
            _check_positive_number("valid_days", self.valid_days)


@dataclass(frozen=True)
class PreparedData:
    """The tables `prepare` made, and counts of what each step removed.

    `train` holds every training session (train the final model on it). With `valid_days`
    set, `valid_train` and `valid` split `train` the same way once more, for tuning.
    `n_test_events_dropped` counts test events removed because their item is not in `train`
    or their session was left with fewer than 2 item events.
    """

    train: pl.DataFrame
    test: pl.DataFrame
    filter_report: FilterReport
    test_cutoff: float | None
    n_input_events: int
    n_repeats_removed: int
    n_test_events_dropped: int
    valid_train: pl.DataFrame | None = None
    valid: pl.DataFrame | None = None
    noise_removed: tuple[Removed, ...] = ()  # per noise rule that ran


def prepare(events: pl.DataFrame, config: PrepareConfig | None = None) -> PreparedData:
    """Run sessionize -> noise -> repeats -> iterative filtering -> time split -> unseen-item
    removal."""
    config = config or PrepareConfig()
    frame = sessionize(events, config.gap_seconds) if config.sessionize else events
    frame, noise_removed = remove_noise(frame, config.noise)
    for removed in noise_removed:
        logger.info(
            "%s: %d sessions, %d events removed", removed.rule, removed.sessions, removed.events
        )
    before_repeats = frame.height
    if config.remove_repeats:
        frame = remove_consecutive_repeats(frame)
    n_repeats = before_repeats - frame.height
    frame, report = filter_iteratively(
        frame,
        min_item_support=config.min_item_support,
        min_session_length=config.min_session_length,
        min_user_sessions=config.min_user_sessions,
        max_user_sessions=config.max_user_sessions,
    )
    split = split_by_time(frame, config.test_days)
    test = drop_unseen_items(split.test, split.train)
    valid_train = valid = None
    if config.valid_days is not None:
        inner = train_valid_split(split.train, config.valid_days)
        valid_train, valid = inner.train, drop_unseen_items(inner.test, inner.train)
    logger.info(
        "prepared %d events: %d train, %d test events (%d removed as unseen or too short)",
        events.height,
        split.n_train_events,
        test.height,
        split.n_test_events - test.height,
    )
    return PreparedData(
        train=split.train,
        test=test,
        filter_report=report,
        test_cutoff=split.cutoff,
        n_input_events=events.height,
        n_repeats_removed=n_repeats,
        n_test_events_dropped=split.n_test_events - test.height,
        valid_train=valid_train,
        valid=valid,
        noise_removed=tuple(noise_removed),
    )


def write_prepared(prepared: PreparedData, out_dir: str | Path) -> dict[str, Path]:
    """Write train.tsv and test.tsv (with validation: train_tr.tsv, valid.tsv) in GRU4Rec TSV.

    train_tr.tsv is the training part that goes with valid.tsv: tuning must not train on the
    validation sessions, which train.tsv contains. Returns the written paths by table name.
    """
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    tables = {"train": prepared.train, "test": prepared.test}
    if prepared.valid is not None and prepared.valid_train is not None:
        tables |= {"train_tr": prepared.valid_train, "valid": prepared.valid}
    paths = {name: directory / f"{name}.tsv" for name in tables}
    for name, table in tables.items():
        write_gru4rec_tsv(table, paths[name])
    return paths


def _check_flag(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def _check_positive_number(name: str, value: object) -> None:
    """A positive, finite int or float (a bool is not a number here)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _check_user_bounds(low: int | None, high: int | None) -> None:
    for name, value in (("min_user_sessions", low), ("max_user_sessions", high)):
        if value is not None:
            _check_count(name, value)
    if low is not None and high is not None and low > high:
        raise ValueError(f"min_user_sessions ({low}) must not exceed max_user_sessions ({high})")
