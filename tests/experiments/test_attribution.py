"""Attribution: impressions, clicks, carts, purchases and revenue counted for the variant of the
list that led to them, by the id carried back or within the window after an impression."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nextbest.events.log import EventLog, ServedList, open_event_log, sqlite_url
from nextbest.events.schema import Event
from nextbest.experiments.attribution import attribute
from nextbest.experiments.spec import Experiment, Variant

START = 10_000_000.0
HOUR = 3600.0
EXPERIMENT = Experiment(
    "home-test", "home", "salt", START, None,
    (Variant("a", "latest", None, 0.5, True), Variant("b", "latest", None, 0.5, False)),
)  # fmt: skip


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    opened = open_event_log(sqlite_url(tmp_path))
    yield opened
    opened.close()


def shown(
    rid: str, at: float, session: str, variant: str, *items: str, **extra: object
) -> ServedList:
    unit = str(extra.pop("unit", f"session:{session}"))
    user = extra.pop("user", None)
    return ServedList(
        rid, at, session, user, str(extra.pop("placement", "home")), None, "v1",  # type: ignore[arg-type]
        tuple((i, "gru4rec", 1.0) for i in items), str(extra.pop("experiment", "home-test")),
        variant, unit,
    )  # fmt: skip


def event(
    kind: str, eid: str, session: str, item: str, at: float, **extra: object
) -> tuple[Event, float]:
    return Event(
        event_id=eid, type=kind, session_id=session, item_id=item, timestamp=at, **extra
    ), at


def log_events(log: EventLog, *events: tuple[Event, float]) -> None:
    for e, at in events:  # each at its own server time
        log.append([e], received_at=at)


def test_each_outcome_counts_for_the_list_that_led_to_it(log: EventLog) -> None:
    log.record_served(
        [
            shown("r1", START + 10, "s1", "a", "x", "y"),
            shown("r2", START + 20, "s2", "b", "x", "z"),
            shown("r3", START + 30, "s2", "b", "w"),
            shown("other", START + 40, "s3", "a", "x", experiment="another"),
            shown("before", START - 10, "s4", "a", "x"),
        ]
    )
    log_events(
        log,
        event("click", "c1", "s1", "x", START + 11, recommendation_id="r1"),
        event("view", "c1-again", "s1", "x", START + 12, recommendation_id="r1"),  # same click
        event("view", "c2", "s1", "q", START + 13, recommendation_id="r1"),  # not in the list
        event("view", "c3", "s2", "z", START + 21, recommendation_id="r2"),
        event("cart", "k1", "s2", "z", START + 22),  # no id: z was shown to s2 at +20
        event("purchase", "p1", "s2", "z", START + 23, value=40.0),
        event("purchase", "p2", "s1", "y", START + 10 + 25 * HOUR, value=9.0),  # out of window
        event("purchase", "p3", "s1", "q", START + 14, value=5.0),  # never shown
        event("purchase", "p4", "s3", "x", START + 41, value=7.0, recommendation_id="other"),
        event("purchase", "p5", "s2", "w", START + 31, value=3.0, recommendation_id="r3"),
    )
    result = attribute(log, EXPERIMENT, until=START + 30 * HOUR)
    table = {row["user_id"]: row for row in result.outcomes().iter_rows(named=True)}
    assert set(table) == {"session:s1", "session:s2"}
    assert table["session:s1"] | {} == {
        "user_id": "session:s1", "variant": "a", "impressions": 1.0, "clicks": 1.0,
        "carts": 0.0, "purchases": 0.0, "revenue": 0.0,
    }  # fmt: skip
    assert table["session:s2"] == {
        "user_id": "session:s2", "variant": "b", "impressions": 2.0, "clicks": 1.0,
        "carts": 1.0, "purchases": 2.0, "revenue": 43.0,
    }  # fmt: skip
    totals = result.totals()
    assert totals["b"]["revenue"] == 43.0 and totals["a"]["users"] == 1.0
    # as it stood before s2's purchase
    early = {r["user_id"]: r for r in result.outcomes(until=START + 22.5).iter_rows(named=True)}
    assert early["session:s2"]["purchases"] == 0.0 and early["session:s2"]["carts"] == 1.0


def test_a_user_counts_across_sessions_and_brings_a_pre_period(log: EventLog) -> None:
    log_events(
        log,
        event("purchase", "old", "s0", "x", START - 2 * 86_400, value=100.0, user_id="u1"),
        event("purchase", "older", "s0", "x", START - 30 * 86_400, value=50.0, user_id="u1"),
    )
    log.record_served([shown("r1", START + 10, "s1", "b", "x", unit="user:u1", user="u1")])
    # another session of the user, later, buys what the list showed
    log_events(log, event("purchase", "p1", "s9", "x", START + 500, value=20.0, user_id="u1"))
    result = attribute(log, EXPERIMENT, until=START + HOUR)
    [row] = result.outcomes().iter_rows(named=True)
    assert (row["user_id"], row["purchases"], row["revenue"]) == ("user:u1", 1.0, 20.0)
    assert (row["pre_purchases"], row["pre_revenue"]) == (1.0, 100.0)  # 30 days ago is out


def test_a_unit_seen_in_two_variants_is_counted_once_and_reported(log: EventLog) -> None:
    log.record_served(
        [shown("r1", START + 1, "s1", "a", "x"), shown("r2", START + 2, "s1", "b", "x")]
    )
    result = attribute(log, EXPERIMENT, until=START + HOUR)
    assert result.mixed_units == 1
    assert result.outcomes()["variant"].to_list() == ["a"]


def test_an_ended_experiment_counts_outcomes_within_the_window_after_its_end(
    log: EventLog,
) -> None:
    ended = Experiment("home-test", "home", "salt", START, START + HOUR, EXPERIMENT.variants)
    log.record_served(
        [shown("r1", START + HOUR - 60, "s1", "a", "x"), shown("late", START + HOUR + 5, "s2",
                                                              "b", "x")]
    )  # fmt: skip
    log_events(
        log,
        event("purchase", "p1", "s1", "x", START + HOUR + 600, value=5.0),  # after the end
        event("purchase", "p2", "s1", "x", START + HOUR + 30 * HOUR, value=7.0),  # too late
    )
    result = attribute(log, ended, until=START + 40 * HOUR)
    [row] = result.outcomes().iter_rows(named=True)
    assert (row["user_id"], row["purchases"], row["revenue"]) == ("session:s1", 1.0, 5.0)
