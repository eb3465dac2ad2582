"""Noise rules: bot-like sessions, over-long sessions and accidental clicks, and their report."""

from __future__ import annotations

import polars as pl
import pytest

from event_tables import event_table
from nextbest.data.noise import NoiseConfig, accidental_clicks, noise_report, remove_noise
from nextbest.data.prepare import PrepareConfig, prepare


def table(rows: list[tuple[str, str, str, float]]) -> pl.DataFrame:
    return event_table(rows, ("session_id", "type", "item_id", "timestamp"))


PERSON = [("p", "view", f"i{k}", 1000.0 + 40 * k) for k in range(12)]  # one page per 40 s
BOT = [("b", "view", f"i{k}", 1000.0 + 0.5 * k) for k in range(12)]  # two pages a second
SLOW_FEW = [("f", "view", f"i{k}", 1000.0 + 0.5 * k) for k in range(5)]  # fast, but only 5


def test_bot_like_sessions_go_whole_and_short_fast_ones_stay() -> None:
    frame, [removed] = remove_noise(
        table(PERSON + BOT + SLOW_FEW), NoiseConfig(bot_events_per_minute=60)
    )
    assert set(frame["session_id"]) == {"p", "f"}
    assert (removed.rule, removed.sessions, removed.events) == ("bot-like sessions", 1, 12)


def test_over_long_sessions_go_whole() -> None:
    frame, [removed] = remove_noise(table(PERSON + SLOW_FEW), NoiseConfig(max_session_events=10))
    assert set(frame["session_id"]) == {"f"} and removed.events == 12


def test_an_accidental_click_is_a_view_the_next_event_follows_at_once() -> None:
    rows = [
        ("s", "view", "a", 10.0),
        ("s", "view", "oops", 50.0),  # 1 s before the next: accidental
        ("s", "view", "b", 51.0),
        ("s", "cart", "b", 51.5),  # a cart add is never accidental
        ("s", "view", "c", 52.0),  # the session's last event: nothing follows
        ("t", "view", "x", 50.5),  # another session, in between: does not count
    ]
    events = table(rows)
    assert accidental_clicks(events, 2.0).to_list() == [False, True, True, False, False, False]
    frame, [removed] = remove_noise(events, NoiseConfig(accidental_seconds=2.0))
    assert frame["item_id"].to_list() == ["a", "b", "c", "x"] and removed.events == 2
    shuffled = events.reverse()  # time, not table order, decides
    assert accidental_clicks(shuffled, 2.0).to_list() == [False, False, False, True, True, False]


def test_the_report_counts_each_rule_on_the_whole_table() -> None:
    report = {r.rule: r for r in noise_report(table(PERSON + BOT))}
    assert report["bot-like sessions"].sessions == 1
    assert report["accidental clicks"].events == 11  # the bot's views but its last
    assert report["over-long sessions"].sessions == 0


def test_prepare_removes_noise_only_when_asked_and_says_how_much() -> None:
    events = table(PERSON + BOT)
    plain = prepare(events, PrepareConfig(min_item_support=1, sessionize=False, test_days=1e-6))
    assert plain.noise_removed == ()
    cleaned = prepare(
        events,
        PrepareConfig(
            min_item_support=1,
            sessionize=False,
            test_days=1e-6,
            noise=NoiseConfig(bot_events_per_minute=60),
        ),
    )
    assert [r.sessions for r in cleaned.noise_removed] == [1]
    assert "b" not in set(cleaned.train["session_id"]) | set(cleaned.test["session_id"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bot_events_per_minute": 0}, "bot_events_per_minute must be a positive"),
        ({"accidental_seconds": float("nan")}, "accidental_seconds must be a positive"),
        ({"max_session_events": 1}, "max_session_events must be an integer >= 2"),
        ({"bot_min_events": True}, "bot_min_events must be an integer"),
    ],
)
def test_bad_thresholds_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NoiseConfig(**kwargs)  # type: ignore[arg-type]
