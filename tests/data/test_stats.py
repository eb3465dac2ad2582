"""Dataset statistics on a table small enough to count by hand."""

from __future__ import annotations

import json

import polars as pl
import pytest
from rich.console import Console

from nextbest.data.stats import DatasetStats, dataset_stats, item_events, session_users
from nextbest.events.schema import conform_events

DAY = 86_400.0


def tiny() -> pl.DataFrame:
    rows = [
        ("s1", "A", 0.0, "u1", "view"),
        ("s1", "B", 60.0, "u1", "view"),
        ("s1", "A", 120.0, "u1", "cart"),
        ("s2", "A", 1000.0, "u1", "view"),
        ("s2", None, 1010.0, "u1", "search"),
        ("s3", "C", 2000.0, None, "view"),
        ("s3", "A", 2100.0, None, "purchase"),
        ("s4", None, 2 * DAY, "u2", "search"),
    ]
    return conform_events(
        pl.DataFrame(
            {
                "event_id": [f"e{i}" for i in range(len(rows))],
                "session_id": [r[0] for r in rows],
                "item_id": [r[1] for r in rows],
                "timestamp": [r[2] for r in rows],
                "user_id": [r[3] for r in rows],
                "type": [r[4] for r in rows],
            }
        )
    )


def test_stats_of_a_tiny_table() -> None:
    stats = dataset_stats(tiny())
    assert stats == DatasetStats(
        n_events=8,
        n_sessions=4,
        n_items=3,
        n_users=2,
        anonymous_session_share=0.25,
        events_per_type={"view": 4, "search": 2, "cart": 1, "purchase": 1},
        first_timestamp=0.0,
        last_timestamp=2 * DAY,
        span_days=2.0,
        session_length_mean=1.5,  # item events per session: 3, 1, 2, 0
        session_length_median=1.5,
        session_length_p90=pytest.approx(2.7),  # type: ignore[arg-type]
        session_length_max=3,
        item_support_min=1,  # A: 4, B: 1, C: 1
        item_support_median=1.0,
        item_support_max=4,
        top1pct_items_event_share=pytest.approx(4 / 6),  # type: ignore[arg-type]
        sessions_per_user_mean=1.5,  # u1: 2, u2: 1
        sessions_per_user_median=1.5,
        sessions_per_user_max=2,
    )


def test_to_dict_is_json_ready() -> None:
    stats = dataset_stats(tiny())
    as_dict = json.loads(json.dumps(stats.to_dict()))
    assert as_dict["events_per_type"] == {"view": 4, "search": 2, "cart": 1, "purchase": 1}
    assert as_dict["n_sessions"] == 4


def test_rich_table_shows_the_numbers() -> None:
    console = Console(record=True, width=120)
    console.print(dataset_stats(tiny()).to_rich_table())
    text = console.export_text()
    assert "anonymous sessions" in text and "25.0%" in text
    assert "events: view" in text
    assert "1 / 1.0 / 4" in text  # item support min / median / max
    assert "66.7%" in text  # events on the top 1% items


def test_stats_of_an_empty_table() -> None:
    stats = dataset_stats(tiny().clear())
    assert (stats.n_events, stats.n_sessions, stats.n_items, stats.n_users) == (0, 0, 0, 0)
    assert stats.first_timestamp is None and stats.span_days == 0.0
    assert stats.events_per_type == {}
    Console(record=True).print(stats.to_rich_table())  # renders without numbers to show


def test_helpers_define_item_events_and_session_users() -> None:
    table = tiny()
    assert table.filter(item_events()).height == 6
    users = dict(session_users(table).sort("session_id").iter_rows())
    assert users == {"s1": "u1", "s2": "u1", "s3": None, "s4": "u2"}
