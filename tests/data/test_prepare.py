"""Sessionizing, repeat removal, iterative filtering and the whole `prepare` run."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from nextbest.data.prepare import (
    FilterReport,
    PrepareConfig,
    filter_iteratively,
    prepare,
    remove_consecutive_repeats,
    sessionize,
    write_prepared,
)
from nextbest.data.tsv import write_gru4rec_tsv
from nextbest.events.importers.gru4rec import import_gru4rec
from nextbest.events.schema import EVENT_SCHEMA, conform_events

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


def rows_of(table: pl.DataFrame) -> list[tuple[str, str | None]]:
    return list(zip(table["session_id"], table["item_id"], strict=True))


# --- sessionize ---------------------------------------------------------------------------


def test_gap_of_exactly_30_minutes_keeps_the_session_one_second_more_cuts() -> None:
    table = events(
        [
            ("s1", "A", 0, "u1", "view"),
            ("s1", "B", 1800, "u1", "view"),  # exactly 30 min later: same session
            ("s1", "C", 3601, "u1", "view"),  # 30 min + 1 s later: new session
            ("s9", "D", 10.0, None, "view"),
            ("s9", "E", 1811.0, None, "view"),  # anonymous: keyed by its session_id
        ]
    )
    result = sessionize(table)
    assert result["session_id"].to_list() == ["u:u1#1", "u:u1#1", "u:u1#2", "s:s9#1", "s:s9#2"]
    assert result.drop("session_id").equals(table.drop("session_id"))
    assert result.schema == pl.Schema(EVENT_SCHEMA)


def test_sessionize_merges_a_users_sessions_within_the_gap_and_keeps_input_order() -> None:
    table = events(
        [
            ("b", "Y", 100, "u1", "view"),  # a second session id of u1, 100 s after "a"
            ("a", "X", 0, "u1", "view"),
            ("c", "P", 5, None, "view"),
            ("c", "Q", 5, None, "view"),  # equal timestamps: input order is kept
        ]
    )
    result = sessionize(table)
    assert rows_of(result) == [("u:u1#1", "Y"), ("u:u1#1", "X"), ("s:c#1", "P"), ("s:c#1", "Q")]


def test_user_and_session_ids_that_look_alike_do_not_collide() -> None:
    table = events([("x", "A", 0, None, "view"), ("s2", "B", 1, "x", "view")])
    assert sessionize(table)["session_id"].to_list() == ["s:x#1", "u:x#1"]


def test_an_anonymous_start_belongs_to_the_user_who_logs_in_later_in_the_session() -> None:
    table = events(
        [
            ("a", "A", 0, None, "view"),
            ("a", "B", 60, "u7", "view"),
            ("z", "C", 120, "u7", "view"),
        ]
    )
    assert sessionize(table)["session_id"].to_list() == ["u:u7#1"] * 3


def test_sessionize_by_session_only_cuts_and_never_merges() -> None:
    table = events(
        [
            ("a", "A", 0, "u1", "view"),
            ("b", "B", 10, "u1", "view"),
            ("b", "C", 5000, "u1", "view"),
        ]
    )
    result = sessionize(table, gap_seconds=600, by="session")
    assert result["session_id"].to_list() == ["s:a#1", "s:b#1", "s:b#2"]


def test_a_search_keeps_the_visitor_active() -> None:
    table = events(
        [
            ("s", "A", 0, None, "view"),
            ("s", None, 1500, None, "search"),
            ("s", "B", 3000, None, "view"),
        ]
    )
    assert sessionize(table)["session_id"].n_unique() == 1


@pytest.mark.parametrize("gap", [0, -5.0, float("nan"), float("inf"), True])
def test_sessionize_rejects_a_bad_gap(gap: float) -> None:
    with pytest.raises(ValueError, match="gap_seconds"):
        sessionize(events([("s", "A", 0)]), gap_seconds=gap)


def test_sessionize_rejects_an_unknown_key() -> None:
    with pytest.raises(ValueError, match="by must be"):
        sessionize(events([("s", "A", 0)]), by="user")  # type: ignore[arg-type]


# --- repeats ------------------------------------------------------------------------------


def test_only_consecutive_repeats_of_item_events_are_removed() -> None:
    table = events(
        [
            ("s1", "A", 1, None, "view"),
            ("s1", "A", 2, None, "view"),  # repeat: dropped
            ("s1", "B", 3, None, "view"),
            ("s1", "A", 4, None, "view"),  # A again, but not consecutive: kept
            ("s1", None, 5, None, "search"),
            ("s1", "A", 6, None, "cart"),  # previous *item* event is A: dropped
            ("s2", "A", 7, None, "view"),  # another session: kept
        ]
    )
    result = remove_consecutive_repeats(table)
    assert result["event_id"].to_list() == ["e0", "e2", "e3", "e4", "e6"]


def test_repeats_follow_time_order_not_row_order() -> None:
    table = events([("s", "A", 3), ("s", "B", 2), ("s", "A", 1)])  # in time: A B A
    assert remove_consecutive_repeats(table).height == 3
    table = events([("s", "B", 3), ("s", "A", 1), ("s", "A", 2)])  # in time: A A B
    assert remove_consecutive_repeats(table)["event_id"].to_list() == ["e0", "e1"]


# --- iterative filtering ------------------------------------------------------------------


def chain_table() -> pl.DataFrame:
    """Each pass makes the next problem: E rare -> S4 short -> C rare -> S2 short -> A rare."""
    return events(
        [
            ("S1", "A", 1),
            ("S1", "B", 2),
            ("S2", "A", 3),
            ("S2", "C", 4),
            ("S3", "B", 5),
            ("S3", "D", 6),
            ("S4", "C", 7),
            ("S4", "E", 8),
            ("S5", "B", 9),
            ("S5", None, 10, None, "search"),
            ("S5", "D", 11),
            ("S6", None, 12, None, "search"),  # no item events at all
        ]
    )


def test_filtering_repeats_until_stable() -> None:
    result, report = filter_iteratively(chain_table(), min_item_support=2, min_session_length=2)
    assert result["event_id"].to_list() == ["e4", "e5", "e8", "e9", "e10"]
    assert rows_of(result) == [("S3", "B"), ("S3", "D"), ("S5", "B"), ("S5", None), ("S5", "D")]
    assert report == FilterReport(
        rounds=3,
        events_before=12,
        events_after=5,
        sessions_before=6,
        sessions_after=2,
        items_before=5,
        items_after=2,
    )


def test_stable_table_passes_unchanged_in_zero_rounds() -> None:
    table = events([("a", "A", 1), ("a", "B", 2), ("b", "A", 3), ("b", "B", 4)])
    result, report = filter_iteratively(table, min_item_support=2)
    assert result.equals(table)
    assert report.rounds == 0


def test_user_session_bounds() -> None:
    table = events(
        [
            ("a1", "A", 1, "one", "view"),  # user "one": 1 session -> below min 2
            ("a1", "B", 2, "one", "view"),
            ("b1", "A", 3, "two", "view"),
            ("b1", "B", 4, "two", "view"),
            ("b2", "A", 5, "two", "view"),
            ("b2", "B", 6, "two", "view"),
            ("c1", "A", 7, "three", "view"),  # user "three": 3 sessions -> above max 2
            ("c1", "B", 8, "three", "view"),
            ("c2", "A", 9, "three", "view"),
            ("c2", "B", 10, "three", "view"),
            ("c3", "A", 11, "three", "view"),
            ("c3", "B", 12, "three", "view"),
            ("anon", "A", 13, None, "view"),  # anonymous: not bounded
            ("anon", "B", 14, None, "view"),
        ]
    )
    result, _ = filter_iteratively(
        table, min_item_support=1, min_user_sessions=2, max_user_sessions=2
    )
    assert result["session_id"].unique(maintain_order=True).to_list() == ["b1", "b2", "anon"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"min_item_support": 0}, "min_item_support"),
        ({"min_session_length": 1.5}, "min_session_length"),
        ({"min_user_sessions": 0}, "min_user_sessions"),
        ({"min_user_sessions": 3, "max_user_sessions": 2}, "max_user_sessions"),
    ],
)
def test_filter_rejects_bad_arguments(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        filter_iteratively(chain_table(), **kwargs)  # type: ignore[arg-type]


# --- config and the whole run -------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("gap_seconds", 0),
        ("gap_seconds", float("nan")),
        ("min_item_support", 0),
        ("min_item_support", 2.5),
        ("min_session_length", -1),
        ("min_session_length", True),
        ("test_days", -1.0),
        ("test_days", "1"),
        ("valid_days", 0),
        ("min_user_sessions", 0),
        ("max_user_sessions", -2),
        ("sessionize", "yes"),
        ("remove_repeats", 1),
    ],
)
def test_bad_config_values_name_the_field_and_the_value(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field) as caught:
        PrepareConfig(**{field: value})  # type: ignore[arg-type]
    assert repr(value) in str(caught.value)


def test_config_rejects_crossed_user_bounds() -> None:
    with pytest.raises(ValueError, match=r"min_user_sessions \(5\).*max_user_sessions \(2\)"):
        PrepareConfig(min_user_sessions=5, max_user_sessions=2)


DAY = 86_400.0


def shop_log() -> pl.DataFrame:
    """Users u0..u2 visit on days 0 and 1 (A, A, B, C); on day 3 an anonymous visitor."""
    rows: list[Row] = []
    for day in range(2):
        for n in range(3):
            start = day * (DAY + 3600) + n * 300
            session, user = f"v{day}{n}", f"u{n}"
            rows += [
                (session, "A", start, user, "view"),
                (session, "A", start + 5, user, "view"),  # a repeat
                (session, "B", start + 60, user, "view"),
                (session, "C", start + 120, user, "view"),
            ]
    rows += [
        ("w", "B", 3 * DAY + 100, None, "view"),
        ("w", "Z", 3 * DAY + 200, None, "view"),  # rare: filtered away before the split
        ("w", "C", 3 * DAY + 300, None, "view"),
        ("w", "A", 3 * DAY + 400, None, "cart"),
    ]
    return events(rows)


def test_prepare_runs_every_step_in_order(tmp_path: Path) -> None:
    config = PrepareConfig(remove_repeats=True, min_item_support=2, valid_days=1.0)
    prepared = prepare(shop_log(), config)
    assert prepared.n_input_events == 28
    assert prepared.n_repeats_removed == 6
    assert prepared.filter_report.events_after == 21
    assert sorted(prepared.train["session_id"].unique()) == [
        "u:u0#1",
        "u:u0#2",
        "u:u1#1",
        "u:u1#2",
        "u:u2#1",
        "u:u2#2",
    ]
    assert rows_of(prepared.test) == [("s:w#1", "B"), ("s:w#1", "C"), ("s:w#1", "A")]
    assert prepared.test_cutoff == 2 * DAY + 400
    assert prepared.valid is not None and prepared.valid_train is not None
    assert sorted(prepared.valid_train["session_id"].unique()) == ["u:u0#1", "u:u1#1", "u:u2#1"]
    assert prepared.valid["session_id"].unique().sort().to_list() == ["u:u0#2", "u:u1#2", "u:u2#2"]

    paths = write_prepared(prepared, tmp_path / "out")
    assert sorted(paths) == ["test", "train", "train_tr", "valid"]
    assert paths["test"].read_text() == (
        "SessionId\tItemId\tTime\tUserId\tEventType\n"
        "s:w#1\tB\t259300.0\t\tview\n"
        "s:w#1\tC\t259500.0\t\tview\n"
        "s:w#1\tA\t259600.0\t\tcart\n"
    )
    train_lines = paths["train"].read_text().splitlines()
    assert train_lines[1:4] == [
        "u:u0#1\tA\t0.0\tu0\tview",
        "u:u0#1\tB\t60.0\tu0\tview",
        "u:u0#1\tC\t120.0\tu0\tview",
    ]
    assert len(train_lines) == 1 + 18


def test_prepare_without_sessionizing_keeps_the_given_session_ids() -> None:
    config = PrepareConfig(sessionize=False, min_item_support=1)
    prepared = prepare(shop_log(), config)
    assert rows_of(prepared.test) == [("w", "B"), ("w", "C"), ("w", "A")]  # Z: unseen
    assert prepared.train["session_id"].unique(maintain_order=True).to_list() == [
        "v00",
        "v01",
        "v02",
        "v10",
        "v11",
        "v12",
    ]
    assert prepared.n_repeats_removed == 0
    assert prepared.valid is None


def test_prepare_does_not_mutate_its_input() -> None:
    table = shop_log()
    copy = table.clone()
    prepare(table, PrepareConfig(remove_repeats=True, min_item_support=2))
    assert table.equals(copy)


def test_tsv_leaves_out_searches_orders_sessions_and_reads_back(tmp_path: Path) -> None:
    table = events(
        [
            ("late", "C", 50, "u1", "view"),
            ("early", "B", 20, None, "view"),
            ("early", None, 15, None, "search"),
            ("early", "A", 10, None, "view"),
            ("late", "D", 50, "u1", "purchase"),  # same time as C: input order kept
        ]
    )
    path = tmp_path / "out.tsv"
    write_gru4rec_tsv(table, path)
    assert path.read_text().splitlines() == [
        "SessionId\tItemId\tTime\tUserId\tEventType",
        "early\tA\t10.0\t\tview",
        "early\tB\t20.0\t\tview",
        "late\tC\t50.0\tu1\tview",
        "late\tD\t50.0\tu1\tpurchase",
    ]
    back = import_gru4rec(path).events
    columns = ["session_id", "item_id", "timestamp", "user_id", "type"]
    expected = table.select(columns).filter(pl.col("item_id").is_not_null())
    assert (
        back.select(columns)
        .sort("timestamp", "item_id")
        .equals(expected.sort("timestamp", "item_id"))
    )


def test_every_step_accepts_an_empty_table(tmp_path: Path) -> None:
    empty = events([])
    assert sessionize(empty).schema == empty.schema
    assert remove_consecutive_repeats(empty).height == 0
    assert filter_iteratively(empty, min_user_sessions=1)[1] == FilterReport(0, 0, 0, 0, 0, 0, 0)
    prepared = prepare(empty, PrepareConfig(valid_days=1.0))
    assert (prepared.train.height, prepared.test.height, prepared.test_cutoff) == (0, 0, None)
    paths = write_prepared(prepared, tmp_path)
    assert paths["test"].read_text() == "SessionId\tItemId\tTime\tUserId\tEventType\n"
