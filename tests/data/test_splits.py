"""Time split, unseen-item removal, validation split and the last-session-per-user split."""

from __future__ import annotations

import polars as pl
import pytest

from nextbest.data.splits import (
    Split,
    drop_unseen_items,
    split_by_time,
    split_users_last_session,
    train_valid_split,
)
from nextbest.events.schema import conform_events

DAY = 86_400.0

Row = tuple[str, str | None, float] | tuple[str, str | None, float, str | None, str]


def events(rows: list[Row]) -> pl.DataFrame:
    """(session_id, item_id, timestamp[, user_id, type]) rows -> an event table, ids e0, e1..."""
    full = [row if len(row) == 5 else (*row, None, "view") for row in rows]
    return conform_events(
        pl.DataFrame(
            {
                "event_id": [f"e{i}" for i in range(len(full))],
                "session_id": [r[0] for r in full],
                "item_id": [r[1] for r in full],
                "timestamp": [float(r[2]) for r in full],
                "user_id": [r[3] for r in full],
                "type": [r[4] for r in full],
            }
        )
    )


def time_table() -> pl.DataFrame:
    """Latest event at 10 days, so with test_days=1 the cutoff is 9 days."""
    cutoff = 9 * DAY
    return events(
        [
            ("old", "A", 1 * DAY),
            ("old", "B", 1 * DAY + 60),
            ("across", "A", cutoff - 600),  # starts before the cutoff, ends after it
            ("across", "B", cutoff + 600),
            ("at", "A", cutoff - 60),
            ("at", "C", cutoff),  # ends exactly at the cutoff: test
            ("before", "B", cutoff - 61),
            ("before", "C", cutoff - 1),  # ends one second before: train
            ("last", "A", 10 * DAY - 5),
            ("last", "B", 10 * DAY),
        ]
    )


def test_time_split_puts_whole_sessions_by_their_last_event() -> None:
    split = split_by_time(time_table(), test_days=1.0)
    assert split.train["event_id"].to_list() == ["e0", "e1", "e6", "e7"]
    assert split.test["event_id"].to_list() == ["e2", "e3", "e4", "e5", "e8", "e9"]
    assert split.cutoff == 9 * DAY
    assert (split.n_train_sessions, split.n_test_sessions) == (2, 3)
    assert (split.n_train_events, split.n_test_events) == (4, 6)


def test_time_split_never_cuts_a_session() -> None:
    split = split_by_time(time_table(), test_days=0.5)
    train_sessions = set(split.train["session_id"])
    assert train_sessions.isdisjoint(split.test["session_id"])
    assert split.train.height + split.test.height == time_table().height
    assert split.test["session_id"].unique(maintain_order=True).to_list() == ["last"]


def test_time_split_of_an_empty_table() -> None:
    empty = time_table().clear()
    split = split_by_time(empty)
    assert (split.train.height, split.test.height, split.cutoff) == (0, 0, None)


@pytest.mark.parametrize("days", [0, -1.0, float("nan"), float("inf"), False, "1"])
def test_bad_days_are_refused(days: float) -> None:
    with pytest.raises(ValueError, match="test_days"):
        split_by_time(time_table(), test_days=days)
    with pytest.raises(ValueError, match="valid_days"):
        train_valid_split(time_table(), valid_days=days)


def test_train_valid_split_is_the_time_split_within_train() -> None:
    train = split_by_time(time_table()).train  # old (day 1), before (ends 9 days - 1 s)
    inner = train_valid_split(train, valid_days=1.0)
    assert isinstance(inner, Split)
    assert inner.train["session_id"].unique(maintain_order=True).to_list() == ["old"]
    assert inner.test["session_id"].unique(maintain_order=True).to_list() == ["before"]
    assert inner.cutoff == 8 * DAY - 1


def test_unseen_items_are_dropped_then_sessions_shorter_than_two() -> None:
    train = events([("t", "A", 1), ("t", "B", 2), ("t", "C", 3)])
    test = events(
        [
            ("keeps", "A", 10),
            ("keeps", "Z", 11),  # unseen: dropped, the session keeps A and B
            ("keeps", "B", 12),
            ("short", "A", 20),
            ("short", "Z", 21),  # after dropping Z only A is left: session dropped
            ("none", "Y", 30),
            ("none", "Z", 31),
            ("search", "C", 40),
            ("search", None, 41, None, "search"),  # item-less events stay in kept sessions
            ("search", "A", 42),
        ]
    )
    result = drop_unseen_items(test, train)
    assert result["event_id"].to_list() == ["e0", "e2", "e7", "e8", "e9"]


def test_a_search_does_not_count_towards_the_two_events() -> None:
    train = events([("t", "A", 1)])
    test = events([("s", "A", 10), ("s", None, 11, None, "search")])
    assert drop_unseen_items(test, train).height == 0
    assert drop_unseen_items(test, train, min_session_length=1).height == 2


def test_last_session_per_user() -> None:
    table = events(
        [
            ("a", "A", 0, "u1", "view"),
            ("a", "B", 10, "u1", "view"),
            ("b", "A", 100, "u1", "view"),  # u1's last session: ends at 130
            ("b", "C", 130, "u1", "view"),
            ("c", "B", 50, "u1", "view"),
            ("c", "C", 60, "u1", "view"),
            ("d", "A", 500, "u2", "view"),  # u2 has one session: train
            ("d", "C", 510, "u2", "view"),
            ("e", "A", 900, None, "view"),  # anonymous: train
            ("e", "B", 910, None, "view"),
            ("f", "B", 200, None, "view"),  # u3 logs in during f, and f ends last
            ("f", "C", 220, "u3", "view"),
            ("g", "A", 150, "u3", "view"),
            ("g", "B", 160, "u3", "view"),
            ("h", "A", 300, "u4", "view"),  # u4: h ends last though i starts later
            ("h", "B", 1000, "u4", "view"),
            ("i", "A", 400, "u4", "view"),
            ("i", "C", 500, "u4", "view"),
        ]
    )
    split = split_users_last_session(table)
    assert split.test["session_id"].unique(maintain_order=True).to_list() == ["b", "f", "h"]
    assert split.test["event_id"].to_list() == ["e2", "e3", "e10", "e11", "e14", "e15"]
    assert split.train.height == table.height - 6
    assert split.cutoff is None


def test_split_last_sessions_holds_out_the_latest_starting_sessions() -> None:
    from nextbest.data.splits import split_last_sessions

    rows = [
        ("s1", "a", 1.0), ("s1", "b", 2.0),
        ("s2", "a", 3.0), ("s2", "c", 4.0),
        ("s3", "b", 5.0), ("s3", "a", 6.0), ("s3", "zz", 7.0),
        ("s4", "zz", 8.0), ("s4", "a", 9.0),
    ]  # fmt: skip
    frame = pl.DataFrame(rows, schema=["session_id", "item_id", "timestamp"], orient="row")
    events = conform_events(
        frame.with_columns(
            pl.format("e{}", pl.int_range(pl.len())).alias("event_id"), pl.lit("view").alias("type")
        )
    )
    split = split_last_sessions(events, share=0.5)
    assert sorted(split.train["session_id"].unique().to_list()) == ["s1", "s2"]
    # s3 keeps its two known items; s4 has one known item left and is dropped
    assert split.test["item_id"].to_list() == ["b", "a"]
    with pytest.raises(ValueError, match="share"):
        split_last_sessions(events, share=1.5)
