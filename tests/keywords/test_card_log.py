"""The keyword card table of the server's own log (`cards_from_log`, `nextbest keywords
export-cards`), and the event log reads under it, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import event
from typer.testing import CliRunner

from event_tables import event_table
from nextbest.cli.main import app
from nextbest.events.log import (
    EventLog,
    GroupCommitLog,
    ServedList,
    SqlEventLog,
    open_event_log,
    sqlite_url,
)
from nextbest.events.schema import Event, conform_items
from nextbest.keywords.card_log import cards_from_log
from nextbest.keywords.graph import QueryGraphConfig, build_query_graph
from nextbest.keywords.ranking import (
    CARD_SCHEMA,
    Vocabulary,
    keyword_ranking_data,
    ordered_cards,
    read_cards,
)

runner = CliRunner()
DAY = 86_400.0
T0 = 1_714_521_600.0  # 2024-05-01T00:00:00Z


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """(database URL, schema) of a fresh, empty database of each kind."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "home"), None
    url, schema = request.getfixturevalue("pg_schema")
    return url, schema


@pytest.fixture
def log(backend: tuple[str, str | None]) -> Iterator[SqlEventLog]:
    opened = open_event_log(*backend)
    yield opened
    opened.close()


def card(
    card_id: str,
    at: float,
    queries: tuple[str, ...],
    session: str | None = "s1",
    user: str | None = None,
    item: str | None = "a1",
    placement: str = "keywords",
) -> ServedList:
    items = tuple((query, "i2q", 1.0 - k / 10) for k, query in enumerate(queries))
    return ServedList(card_id, at, session, user, placement, item, "v1", items)


def click(event_id: str, card_id: str | None, query: str, session: str = "s1") -> Event:
    return Event(
        event_id=event_id, type="keyword-click", session_id=session, timestamp=1.0, query=query,
        recommendation_id=card_id,
    )  # fmt: skip


def queries_of_reads(log: SqlEventLog, table: str) -> list[str]:
    """Every SELECT on `table` the log runs from now on (appended as they run)."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and table in statement:
            seen.append(statement)

    event.listen(log.engine, "before_cursor_execute", count)
    return seen


# --- the event log's reads -------------------------------------------------------------------


def test_served_lists_are_read_in_time_order_in_batches_across_ties(log: SqlEventLog) -> None:
    # three lists at one instant straddle the batch boundary: the id breaks the tie
    lists = [card(f"r{k}", T0 + k, ("tent",)) for k in (5, 1, 3)]
    lists += [card(f"t{k}", T0 + 2, ("hat",)) for k in (2, 0, 1)]
    lists += [card("home1", T0 + 2, ("i1",), placement="home")]
    log.record_served(lists)
    selects = queries_of_reads(log, "served")
    read = [s.recommendation_id for s in log.served_lists("keywords", batch=2)]
    assert read == ["r1", "t0", "t1", "t2", "r3", "r5"]
    assert len(selects) == 4  # 2 + 2 + 2, each batch its own query; a full one asks again
    assert list(log.served_lists("keywords", batch=2)) == list(log.served_lists("keywords"))
    assert log.served_lists("keywords", batch=2).__next__() == card("r1", T0 + 1, ("tent",))
    bounded = log.served_lists("keywords", since=T0 + 2, until=T0 + 5, batch=1)
    assert [s.recommendation_id for s in bounded] == ["t0", "t1", "t2", "r3"]
    assert [s.recommendation_id for s in log.served_lists("home")] == ["home1"]
    assert list(log.served_lists("nowhere")) == []
    with pytest.raises(ValueError, match="batch"):
        log.served_lists("keywords", batch=0)


def test_events_of_type_in_log_order_in_batches_within_the_window(log: SqlEventLog) -> None:
    for k in range(7):
        log.append(
            [click(f"c{k}", f"r{k}", "tent"), Event(event_id=f"v{k}", type="view",
             session_id="s1", item_id="a1", timestamp=1.0)],
            received_at=T0 + k,
        )  # fmt: skip
    selects = queries_of_reads(log, "events")
    clicks = [e.event_id for e in log.events_of_type("keyword-click", batch=3)]
    assert clicks == [f"c{k}" for k in range(7)]
    assert len(selects) == 3  # 3 + 3 + 1
    window = log.events_of_type("keyword-click", since=T0 + 2, until=T0 + 5, batch=2)
    assert [e.event_id for e in window] == ["c2", "c3", "c4"]
    # the default of every EventLog (filtering the whole log) reads the same
    default = EventLog.events_of_type(log, "keyword-click", since=T0 + 2, until=T0 + 5, batch=2)
    assert [e.event_id for e in default] == ["c2", "c3", "c4"]
    grouped = GroupCommitLog(log)
    assert [e.event_id for e in grouped.events_of_type("view", since=T0 + 6)] == ["v6"]
    assert [s.recommendation_id for s in grouped.served_lists("keywords")] == []


# --- the card table --------------------------------------------------------------------------


def test_cards_rows_labels_and_unmatched_clicks(log: SqlEventLog) -> None:
    log.record_served(
        [
            card("k1", T0 + 10, ("running shoes", "tent", "knit hat"), user="u1"),
            card("k2", T0 + 20, ("tent", "kettle"), session="s2", item=None),
            card("k3", T0 + 30, ("hat",), session=None),  # served without a session
            card("k4", T0 + 40, ("tent", "lamp")),  # shown, never clicked
            card("h1", T0 + 15, ("a1", "a2"), placement="home"),  # a list, not a card
        ]
        + [card(f"z{k}", T0 + 50 + k, ("sofa",)) for k in range(3)]  # past the batch of 2
    )
    log.append(
        [
            click("c1", "k1", "  Running   SHOES "),  # normalised: on the card
            click("c2", "k1", "running shoes"),  # the same keyword again: one label
            click("c1", "k1", "running shoes"),  # the same event again: not logged twice
            click("c3", "k2", "kettle", session="s2"),
            click("c4", "k2", "sofa", session="s2"),  # not on k2: unmatched
            click("c5", "nope", "tent"),  # no such card: unmatched
            click("c6", "h1", "a1"),  # a recommendation list's id: no keyword card
            click("c7", None, "tent"),  # no card id at all: not a click on a card
            click("c8", "z1", "sofa"),
        ],
        received_at=T0 + 100,
    )
    exported = cards_from_log(log, batch=2)
    cards = exported.cards
    assert cards.schema == pl.Schema(CARD_SCHEMA)
    assert cards.equals(ordered_cards(cards))
    assert cards["card_id"].unique(maintain_order=True).to_list() == [
        "k1", "k2", "k3", "k4", "z0", "z1", "z2"
    ]  # fmt: skip
    k1 = cards.filter(pl.col("card_id") == "k1")
    assert k1["position"].to_list() == [0, 1, 2]  # 0-based, in the order shown
    assert k1["query"].to_list() == ["running shoes", "tent", "knit hat"]
    assert k1["clicked"].to_list() == [True, False, False]
    assert k1.row(0, named=True) | {"query": None} == {
        "card_id": "k1", "session_id": "s1", "user_id": "u1", "timestamp": T0 + 10,
        "item_id": "a1", "position": 0, "query": None, "clicked": True,
    }  # fmt: skip
    k2 = cards.filter(pl.col("card_id") == "k2")
    assert k2["clicked"].to_list() == [False, True] and k2["item_id"].is_null().all()
    k3 = cards.filter(pl.col("card_id") == "k3")
    assert k3["session_id"].to_list() == ["k3"]  # a session of its own
    clicked = cards.filter("clicked").select("card_id", "query").rows()
    assert clicked == [("k1", "running shoes"), ("k2", "kettle"), ("z1", "sofa")]
    assert (exported.n_cards, exported.n_keywords, exported.sessionless) == (7, 11, 1)
    assert (exported.clicks_matched, exported.keywords_clicked) == (3, 3)
    assert (exported.clicks_unknown_card, exported.clicks_off_card) == (2, 1)
    assert exported.clicks_unmatched == 3
    assert exported.click_rate == pytest.approx(3 / 11)
    assert cards_from_log(GroupCommitLog(log)).cards.equals(cards)


def test_since_and_until_bound_the_cards_and_the_clicks_counted(log: SqlEventLog) -> None:
    log.record_served(
        [
            card("early", T0 - 60, ("tent",)),  # before the window
            card("k1", T0 + 10, ("tent",)),
            card("k2", T0 + DAY - 1, ("hat",)),  # clicked after the window ends
            card("late", T0 + DAY, ("lamp",)),  # at `until`: the next window's
        ]
    )
    log.append([click("a", "early", "tent"), click("b", "k1", "tent")], received_at=T0 + 20)
    log.append([click("c", "gone", "tent")], received_at=T0 - 120)  # before the window
    log.append([click("d", "nope", "tent")], received_at=T0 + 30)  # in it, no card
    log.append(
        [click("e", "k2", "hat"), click("f", "late", "lamp"), click("g", "nope2", "x")],
        received_at=T0 + DAY + 5,  # after it: k2's click counts, the rest are the next's
    )
    exported = cards_from_log(log, since=T0, until=T0 + DAY, batch=1)
    assert exported.cards["card_id"].unique(maintain_order=True).to_list() == ["k1", "k2"]
    assert exported.cards["clicked"].to_list() == [True, True]
    assert (exported.clicks_matched, exported.clicks_unknown_card) == (2, 1)  # only "nope"
    assert exported.clicks_off_card == 0
    everything = cards_from_log(log)
    assert everything.n_cards == 4 and everything.clicks_matched == 4
    # without `since`, clicks before the first kept card are not read ("gone")
    assert everything.clicks_unknown_card == 2
    assert cards_from_log(log, since=T0 + 2 * DAY).n_cards == 0
    with pytest.raises(ValueError, match="before"):
        cards_from_log(log, since=T0, until=T0)


ITEMS = conform_items(
    pl.DataFrame(
        {
            "item_id": ["a1", "a2", "b1"],
            "title": ["Red Tent", "Blue Tent", "Wool Hat"],
            "category_path": ["Outdoor > Tents", "Outdoor > Tents", "Wear > Hats"],
        }
    )
)


def test_the_exported_cards_are_cases_for_the_rankers(log: SqlEventLog) -> None:
    log.record_served(
        [
            card("k1", T0 + 10, ("tent", "knit hat"), user="u1"),
            card("k2", T0 + 20, ("knit hat", "tent"), session=None, user=None, item=None),
        ]
    )
    log.append([click("c1", "k1", "tent"), click("c2", "k2", "Knit Hat")], received_at=T0 + 30)
    exported = cards_from_log(log)
    searches = [
        (f"q{k}", T0 - 100 + k, kind, item, query)
        for k in range(3)
        for kind, item, query in (
            ("search", None, "tent"), ("view", "a1", None), ("view", "a2", None),
            ("search", None, "knit hat"), ("view", "b1", None),
        )
    ]  # fmt: skip
    events = event_table(
        [*searches, ("s1", T0 + 5, "view", "a1", None)],
        ("session_id", "timestamp", "type", "item_id", "query"),
    )
    graph = build_query_graph(events, ITEMS, QueryGraphConfig(min_count=1.0))
    data = keyword_ranking_data(exported.cards, events, graph, Vocabulary.of(graph, ITEMS))
    assert data.n_cases == 2 and data.label.tolist() == [1.0, 0.0, 1.0, 0.0]


# --- the command -----------------------------------------------------------------------------


@pytest.fixture
def server_log(
    backend: tuple[str, str | None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SqlEventLog]:
    """The log the command finds from the server's settings (NEXTBEST_HOME for SQLite,
    NEXTBEST_DATABASE_URL and _SCHEMA for PostgreSQL)."""
    url, schema = backend
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "160")
    for name in ("NEXTBEST_DATABASE_URL", "NEXTBEST_DATABASE_SCHEMA"):
        monkeypatch.delenv(name, raising=False)
    if schema is not None:
        monkeypatch.setenv("NEXTBEST_DATABASE_URL", url)
        monkeypatch.setenv("NEXTBEST_DATABASE_SCHEMA", schema)
    opened = open_event_log(url, schema)
    yield opened
    opened.close()


def test_export_cards_writes_what_read_cards_reads(server_log: SqlEventLog, tmp_path: Path) -> None:
    server_log.record_served(
        [
            card("k1", T0 + 10, ("tent", "knit hat")),
            card("k2", T0 + DAY + 10, ("hat", "lamp")),  # 2024-05-02
        ]
    )
    server_log.append([click("c1", "k1", "Tent"), click("c2", "k9", "x")], received_at=T0 + 20)
    out = tmp_path / "cards.parquet"
    result = runner.invoke(
        app, ["keywords", "export-cards", "--out", str(out), "--until", "2024-05-02"]
    )
    assert result.exit_code == 0, result.output
    assert "1 keyword cards, 2 keywords shown, 1 clicked (50.0%)" in result.output
    assert "1 matched; 1 unmatched" in result.output
    cards = read_cards(out)
    assert cards.equals(cards_from_log(server_log, until=T0 + DAY).cards)
    assert cards.select("card_id", "position", "query", "clicked").rows() == [
        ("k1", 0, "tent", True),
        ("k1", 1, "knit hat", False),
    ]
    since = runner.invoke(
        app, ["keywords", "export-cards", "--out", str(out), "--since", "2024-05-02T00:00:00Z"]
    )
    assert since.exit_code == 0, since.output
    assert read_cards(out)["card_id"].unique().to_list() == ["k2"]


def test_export_cards_names_bad_input(server_log: SqlEventLog, tmp_path: Path) -> None:
    out = tmp_path / "cards.parquet"
    bad = runner.invoke(app, ["keywords", "export-cards", "--out", str(out), "--since", "May 1"])
    assert bad.exit_code == 2 and "--since 'May 1' is not an ISO date" in bad.output
    assert not out.exists()
    order = ["--since", "2024-05-02", "--until", "2024-05-01"]
    backwards = runner.invoke(app, ["keywords", "export-cards", "--out", str(out), *order])
    assert backwards.exit_code == 2 and "--since (2024-05-02) must be before --until" in (
        backwards.output
    )
    empty = runner.invoke(app, ["keywords", "export-cards", "--out", str(out)])
    assert empty.exit_code == 2 and "holds no keyword cards" in empty.output
    assert not out.exists()
    server_log.record_served([card("k1", T0, ("tent",))])
    folder = runner.invoke(app, ["keywords", "export-cards", "--out", str(tmp_path)])
    assert folder.exit_code == 2 and "--out" in folder.output and "is a folder" in folder.output
    nowhere = tmp_path / "missing" / "cards.parquet"
    missing = runner.invoke(app, ["keywords", "export-cards", "--out", str(nowhere)])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_export_cards_without_a_log_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path / "nothing"))
    monkeypatch.delenv("NEXTBEST_DATABASE_URL", raising=False)
    out = tmp_path / "cards.parquet"
    result = runner.invoke(app, ["keywords", "export-cards", "--out", str(out)])
    assert result.exit_code == 2 and "no event log at" in result.output
    assert not (tmp_path / "nothing").exists()  # nothing created where it looked
