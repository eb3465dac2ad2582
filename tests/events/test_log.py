"""The shared suite of the event log and the catalog, run against SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from backends import sqlite_pragmas
from nextbest.events.catalog import SqlCatalog
from nextbest.events.log import (
    EventLog,
    GroupCommitLog,
    ServedList,
    open_event_log,
    sqlite_url,
)
from nextbest.events.log.database import open_engine
from nextbest.events.log.group import Pending
from nextbest.events.schema import EVENT_SCHEMA, LOG_EVENT_SCHEMA, Event, Item, conform_events


def view(event_id: str, session: str, item: str, t: float = 1.0, **extra: object) -> Event:
    return Event(
        event_id=event_id, type="view", session_id=session, item_id=item, timestamp=t, **extra
    )


@pytest.fixture
def log(backend: tuple[str, str | None]) -> Iterator[EventLog]:
    opened = open_event_log(*backend)
    yield opened
    opened.close()


def test_append_is_idempotent_on_event_id(log: EventLog) -> None:
    first = log.append([view("e1", "s1", "a"), view("e2", "s1", "b"), view("e1", "s1", "zz")])
    assert first.inserted == (True, True, False)  # the repeat inside the batch is a duplicate
    again = log.append([view("e2", "s1", "b"), view("e3", "s2", "c")])
    assert again.inserted == (False, True)
    assert (again.n_inserted, again.n_duplicates) == (1, 1)
    assert first.seqs[0] < first.seqs[1] < again.seqs[1] and again.seqs[0] == 0
    assert log.count() == 3
    logged = log.session_events(["s1"], last=10)["s1"]
    assert [e.item_id for e in logged] == ["a", "b"]  # the first "e1" was kept, not the repeat


def test_an_append_that_fails_before_its_commit_keeps_nothing_of_itself(
    log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    log.append([view("e0", "s0", "i0")])

    def broken(*args: object) -> object:  # runs after the inserts, inside the transaction
        raise RuntimeError("the links could not be made")

    monkeypatch.setattr("nextbest.events.log.sql._first_users", broken)
    batch = [view("e1", "s1", "i1", user_id="u1"), view("e2", "s0", "i2")]
    with pytest.raises(RuntimeError, match="the links could not be made"):
        log.append(batch, probe=["s1"])
    assert log.count() == 1 and log.session_owners(["s1"]) == {}
    monkeypatch.undo()
    again = log.append(batch, probe=["s1"])  # nothing of the failed one is in the way
    assert all(again.seqs) and again.new_sessions == {"s1"}
    assert log.count() == 3 and log.session_owners(["s1"]) == {"s1": "u1"}


def test_session_events_are_the_last_ones_in_log_order(log: EventLog) -> None:
    log.append([view(f"e{i}", f"s{i % 3}", f"i{i}", t=float(100 - i)) for i in range(12)])
    found = log.session_events(["s0", "s2", "nobody"], last=3)
    assert set(found) == {"s0", "s2"}
    assert [e.item_id for e in found["s0"]] == ["i3", "i6", "i9"]  # log order, not time order
    assert [e.item_id for e in found["s2"]] == ["i5", "i8", "i11"]
    seqs = [e.seq for e in found["s0"]]
    assert seqs == sorted(seqs)


def test_fields_survive_the_round_trip(log: EventLog) -> None:
    event = Event(
        event_id="p1", type="purchase", session_id="s1", item_id="sku-007", user_id="u1",
        timestamp=1700000000.25, value=19.99, placement="cart", device="mobile",
        recommendation_id="r-42", context={"arm": "b", "page": 3, "first": True},
    )  # fmt: skip
    log.append(
        [
            event,
            Event(event_id="q1", type="search", session_id="s1", timestamp=2.0, query="red shoes"),
        ],
        received_at=123.5,
    )
    stored, search = log.session_events(["s1"], last=5)["s1"]
    assert (stored.event_id, stored.type, stored.item_id, stored.user_id) == (
        "p1",
        "purchase",
        "sku-007",
        "u1",
    )
    assert (stored.timestamp, stored.value, stored.received_at) == (1700000000.25, 19.99, 123.5)
    assert (stored.placement, stored.device, stored.recommendation_id) == ("cart", "mobile", "r-42")
    assert stored.context == '{"arm":"b","page":3,"first":true}'
    assert (search.item_id, search.query) == (None, "red shoes")


def test_user_purchases(log: EventLog) -> None:
    events = [
        Event(event_id=f"p{i}", type="purchase", session_id=f"s{i}", item_id=f"i{i}",
              user_id="u1" if i % 2 else "u2", timestamp=float(i))
        for i in range(6)
    ] + [view("v1", "s9", "seen-only", user_id="u1")]  # fmt: skip
    log.append(events)
    assert log.user_purchases(["u1", "u2", "u3"], last=2) == {
        "u1": ["i3", "i5"],
        "u2": ["i2", "i4"],
    }


def purchase(event_id: str, session: str, item: str, **extra: object) -> Event:
    return Event(
        event_id=event_id, type="purchase", session_id=session, item_id=item, timestamp=1.0,
        **extra,
    )  # fmt: skip


def test_a_sessions_first_user_owns_it(log: EventLog) -> None:
    log.append([view("e1", "s1", "a"), view("e2", "s1", "b", user_id="u1")])
    log.append([view("e3", "s1", "c", user_id="u2"), view("e4", "s2", "d")])
    assert log.session_owners(["s1", "s2", "nobody"]) == {"s1": "u1"}  # first user wins
    assert log.link("s1", "u2") == "u1"  # a session keeps its owner
    assert log.link("s2", "u2", at=5.0) == "u2"  # an anonymous session logs in
    assert log.link("s2", "u2") == "u2"  # again: nothing changes
    assert log.session_owners(["s1", "s2"]) == {"s1": "u1", "s2": "u2"}


def test_stitched_purchases_count_for_the_user_exactly_once(log: EventLog) -> None:
    log.append([purchase("p1", "s1", "before-login"), view("v1", "s1", "x")])
    assert log.user_purchases(["u1"], last=10) == {}
    log.link("s1", "u1")
    log.append([purchase("p2", "s1", "after-login"), purchase("p3", "s1", "named", user_id="u1")])
    log.append([purchase("p4", "s2", "other-session", user_id="u1")])
    log.link("s1", "u1")  # a repeated login counts nothing twice
    assert log.user_purchases(["u1"], last=10) == {
        "u1": ["before-login", "after-login", "named", "other-session"]
    }
    assert log.user_purchases(["u1"], last=2) == {"u1": ["named", "other-session"]}


def test_user_sessions_in_link_order(log: EventLog) -> None:
    for number, session in enumerate(["a", "b", "c", "d"]):
        log.link(session, "u1", at=float(number))
    log.link("x", "u2", at=0.5)
    assert log.user_sessions(["u1", "u2", "u3"], last=3) == {"u1": ["b", "c", "d"], "u2": ["x"]}


def test_export_gives_stitched_events_their_owner(log: EventLog) -> None:
    log.append([view("e1", "s1", "a"), view("e2", "s2", "b", user_id="u9")])
    log.link("s1", "u1")
    log.append([view("e3", "s1", "c")])
    table = log.export()
    assert table["user_id"].to_list() == ["u1", "u9", "u1"]
    assert table["event_id"].to_list() == ["e1", "e2", "e3"]


def test_read_after_pages_the_whole_log_and_export_conforms(log: EventLog) -> None:
    log.append([view(f"e{i}", f"s{i % 4}", f"i{i}") for i in range(25)])
    assert log.last_seq() >= 25
    page = log.read_after(0, 10)
    assert len(page) == 10 and log.read_after(page[-1].seq, 100)[0].seq > page[-1].seq
    assert [e.event_id for e in log.iter_events(batch_size=7)] == [f"e{i}" for i in range(25)]
    table = log.export(batch_size=7)
    assert dict(table.schema) == LOG_EVENT_SCHEMA and table.height == 25
    training = conform_events(table)
    assert dict(training.schema) == EVENT_SCHEMA
    assert training["item_id"].to_list() == [f"i{i}" for i in range(25)]


def test_read_items_after_gives_each_events_seq_session_and_item(log: EventLog) -> None:
    log.append([view(f"e{i}", f"s{i % 4}", f"i{i}") for i in range(12)])
    full = log.read_after(3, 5)
    assert log.read_items_after(3, 5) == [(e.seq, e.session_id, e.item_id) for e in full]
    assert [row[2] for row in log.read_items_after(0, 100)] == [f"i{i}" for i in range(12)]
    assert log.read_items_after(log.last_seq(), 10) == []


def test_empty_log(log: EventLog) -> None:
    assert (log.count(), log.last_seq(), log.read_after(0, 5)) == (0, 0, [])
    assert log.export().height == 0 and log.session_events(["s"], last=5) == {}
    log.ping()


def test_committed_events_survive_reopening(backend: tuple[str, str | None]) -> None:
    first = open_event_log(*backend)
    first.append([view("e1", "s1", "a"), view("e2", "s1", "b")])
    first.close()
    second = open_event_log(*backend)
    try:
        assert second.count() == 2
        assert second.append([view("e2", "s1", "b")]).inserted == (False,)
    finally:
        second.close()


def test_append_names_the_probed_sessions_it_starts(log: EventLog) -> None:
    every = ["s1", "s2", "s3", "s4", "s5", "s6"]
    first = log.append([view("e1", "s1", "a"), view("e2", "s1", "b"), view("e3", "s2", "c")])
    assert first.new_sessions == frozenset()  # nobody asked
    assert log.append([view("e0", "s0", "a")], probe=every).new_sessions == frozenset()
    again = log.append(
        [view("e4", "s1", "d"), view("e5", "s3", "e"), view("e1", "s4", "x")], probe=every
    )
    assert again.new_sessions == {"s3"}  # s1 had a past; s4 got only a duplicate
    assert log.link("s5", "u1") == "u1"  # an owner, before any event: not new
    assert log.append([view("e6", "s5", "f")], probe=every).new_sessions == frozenset()
    named = log.append(
        [view("e7", "s6", "g", user_id="u2"), view("e8", "s6", "h"), view("e9", "s7", "i")],
        probe=every,
    )
    assert named.new_sessions == {"s6"}  # new, and linked to u2 by this append; s7 not asked
    assert log.session_owners(["s6"]) == {"s6": "u2"}
    assert log.append([view("e7", "s6", "g")], probe=every).new_sessions == frozenset()


def test_group_commit_names_a_new_session_only_to_its_one_caller(log: EventLog) -> None:
    grouped = GroupCommitLog(log)
    alone, shared, other = Future(), Future(), Future()  # type: ignore[var-annotated]
    probe = frozenset({"only-a", "both", "only-c"})
    grouped._commit(  # one group, as the writer thread forms it from waiting callers
        [
            Pending([view("a1", "only-a", "x"), view("a2", "both", "y")], None, probe, alone),
            Pending([view("b1", "both", "z")], None, probe, shared),
            Pending([view("c1", "only-c", "z")], None, frozenset({"both"}), other),
        ]
    )
    assert alone.result().new_sessions == {"only-a"}  # "both" would miss the other's event
    assert shared.result().new_sessions == frozenset()
    assert other.result().new_sessions == frozenset()  # it did not ask about "only-c"
    assert [r.result().n_inserted for r in (alone, shared, other)] == [2, 1, 1]
    grouped.close()


def test_served_lists_and_their_outcomes(log: EventLog) -> None:
    shown = ServedList(
        "r1", 10.0, "s1", "u1", "home", None, "v1", (("a", "gru4rec", 2.5), ("b", "covisit", 0.5))
    )
    log.record_served([shown, ServedList("r2", 11.0, None, None, None, "a", None, ())])
    log.record_served([ServedList("r1", 99.0, "other", None, None, None, None, ())])  # kept once
    assert log.served("r1") == shown
    assert log.served("r2") == ServedList("r2", 11.0, None, None, None, "a", None, ())
    assert log.served("nothing") is None
    log.append(
        [
            view("e1", "s1", "b", recommendation_id="r1"),
            view("e2", "s1", "z"),
            purchase("e3", "s1", "b", recommendation_id="r1"),
            view("e4", "s2", "a", recommendation_id="r2"),
        ]
    )
    assert [e.event_id for e in log.outcomes("r1", last=10)] == ["e1", "e3"]
    assert [e.event_id for e in log.outcomes("r1", last=1)] == ["e1"]
    assert log.outcomes("nothing", last=10) == []


def test_old_served_lists_are_forgotten_oldest_first(log: EventLog) -> None:
    log.record_served(
        [ServedList(f"r{t}", float(t), None, None, None, None, None, ()) for t in range(10)]
    )
    assert log.forget_served(before=5.5, limit=2) == 2
    assert log.served("r0") is None and log.served("r1") is None and log.served("r2") is not None
    assert log.forget_served(before=5.5, limit=100) == 4
    assert log.forget_served(before=5.5, limit=100) == 0
    assert [t for t in range(10) if log.served(f"r{t}") is not None] == [6, 7, 8, 9]


TRIGGER_TABLES = ("trigger_cursor", "trigger_pending", "trigger_last", "trigger_outbox")


def test_a_log_made_before_an_index_gets_it(backend: tuple[str, str | None]) -> None:
    """A log an older release made (no migrations yet, and no index of a later one)."""
    opened = open_event_log(*backend)
    table = opened.events
    index = next(i for i in table.indexes if i.name == "ix_events_recommendation")
    with opened.engine.begin() as connection:
        index.drop(connection)
        prefix = f"{backend[1]}." if backend[1] else ""
        for name in ("alembic_version", *TRIGGER_TABLES):  # none of them before migrations
            connection.execute(text(f"DROP TABLE {prefix}{name}"))
    opened.close()
    reopened = open_event_log(*backend)
    with reopened.engine.connect() as connection:
        names = {i["name"] for i in inspect(connection).get_indexes("events", schema=backend[1])}
    assert "ix_events_recommendation" in names
    reopened.close()


def test_group_commit_gives_each_caller_its_own_result(log: EventLog) -> None:
    grouped = GroupCommitLog(log)
    results: dict[int, tuple[bool, ...]] = {}

    def send(worker: int) -> None:
        # every worker sends 20 own events and the same 5 shared ids
        own = [view(f"w{worker}-{i}", f"s{worker}", f"i{i}") for i in range(20)]
        shared = [view(f"shared-{i}", "s-shared", f"i{i}") for i in range(5)]
        results[worker] = grouped.append(own + shared).inserted

    threads = [threading.Thread(target=send, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(all(flags[:20]) for flags in results.values())
    for i in range(5):  # each shared id was accepted by exactly one caller
        assert sum(flags[20 + i] for flags in results.values()) == 1
    assert grouped.count() == 8 * 20 + 5
    grouped.close()


@pytest.fixture
def catalog(backend: tuple[str, str | None]) -> Iterator[SqlCatalog]:
    url, schema = backend
    engine = open_engine(url)
    yield SqlCatalog(engine, schema)
    engine.dispose()


def test_catalog_upserts_and_reports_changes(catalog: SqlCatalog) -> None:
    shoe = Item(item_id="shoe", title="Red shoe", category_path=("Shoes", "Red"), price=50.0,
                attributes={"size": [40, 41]})  # fmt: skip
    assert catalog.upsert([shoe, Item(item_id="hat", in_stock=False)]) == 2
    assert catalog.get(["shoe", "nothing"]) == {"shoe": shoe}
    changes = catalog.changed_since(0.0)
    assert sorted((item_id, stock) for item_id, stock, _ in changes) == [
        ("hat", False),
        ("shoe", True),
    ]
    later = max(when for _, _, when in changes) + 1e-6
    assert catalog.changed_since(later) == []
    time.sleep(0.01)
    catalog.upsert([Item(item_id="hat", title="Hat", in_stock=True)])
    assert catalog.count() == 2 and catalog.get(["hat"])["hat"].title == "Hat"
    assert [item.item_id for item in catalog.items(limit=5)] == ["hat", "shoe"]
    assert [(i, s) for i, s, _ in catalog.changed_since(later)] == [("hat", True)]


def test_sqlite_log_refuses_a_schema(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="schema"):
        open_event_log(sqlite_url(tmp_path), schema="nope")
    with pytest.raises(ValueError, match="unsupported database URL"):
        open_event_log("mysql://x")


def test_only_sqlite_promises_commits_in_seq_order(
    log: EventLog, backend: tuple[str, str | None]
) -> None:
    assert log.commits_in_seq_order == backend[0].startswith("sqlite")
    assert GroupCommitLog(log).commits_in_seq_order == log.commits_in_seq_order


@pytest.mark.parametrize(("asked", "level"), [(None, 2), ("FULL", 2), ("NORMAL", 1)])
def test_the_sqlite_log_runs_in_wal_mode_and_syncs_as_asked(
    tmp_path: Path, asked: str | None, level: int
) -> None:
    """Durability: every connection of the log's engine is in WAL mode with
    `synchronous=FULL` (2: a commit is on disk before `append` returns) unless NORMAL (1) is
    asked for."""
    url = sqlite_url(tmp_path)
    log = open_event_log(url) if asked is None else open_event_log(url, synchronous=asked)  # type: ignore[arg-type]
    try:
        log.append([view("e1", "s1", "a")])
        assert sqlite_pragmas(log.engine) == [("wal", level)] * 3
    finally:
        log.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "events.db")) as plain:
        # WAL is kept in the file itself: a connection that sets nothing finds it
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_the_sqlite_log_refuses_other_synchronous_levels(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="FULL or NORMAL"):
        open_event_log(sqlite_url(tmp_path), synchronous="OFF")  # type: ignore[arg-type]


@pytest.mark.parametrize("orders", ["one order", "opposite orders"])
def test_two_logs_racing_on_the_same_event_ids_keep_and_accept_each_once(
    pg_schema: tuple[str, str], orders: str
) -> None:
    """Two PostgreSQL logs (two engines, as two server processes have; one behind group
    commit, as the server runs it), two threads each, append the same event ids at the same
    moment, round after round. Each thread's window of a round's ids overlaps the others',
    so either side may win any id; in opposite orders, transactions wait on each other in a
    circle and PostgreSQL aborts one (the log appends it again). Each id is logged once,
    accepted by exactly one reply (under the seq it was logged with) and a duplicate in
    every other."""
    url, schema = pg_schema
    plain = open_event_log(url, schema)
    grouped = GroupCommitLog(open_event_log(url, schema))
    rounds, width, offsets = 25, 40, (0, 10, 20, 30)
    callers = [(plain, offsets[0]), (grouped, offsets[1]), (plain, offsets[2]),
               (grouped, offsets[3])]  # fmt: skip
    start = threading.Barrier(len(callers))
    replies: list[tuple[str, int]] = []  # (event_id, seq or 0) of every reply's entry
    errors: list[BaseException] = []
    lock = threading.Lock()

    def race(log: EventLog, offset: int) -> None:
        for r in range(rounds):
            ids = [f"r{r}-{k:03d}" for k in range(offset, offset + width)]
            if orders == "opposite orders" and offset in offsets[1::2]:
                ids.reverse()
            events = [view(i, f"s{r}-{k % 3}", f"i{k}") for k, i in enumerate(ids)]
            try:
                start.wait(timeout=30)
                seqs = log.append(events).seqs
            except BaseException as exc:  # the assertion below reports it
                errors.append(exc)
                start.abort()
                return
            with lock:
                replies.extend(zip(ids, seqs, strict=True))

    threads = [threading.Thread(target=race, args=caller) for caller in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert not errors, errors[:3]
        every = {f"r{r}-{k:03d}" for r in range(rounds) for k in range(offsets[-1] + width)}
        covering = Counter(  # how many callers sent each id
            f"r{r}-{k:03d}" for r in range(rounds) for o in offsets for k in range(o, o + width)
        )
        assert Counter(i for i, _ in replies) == covering  # one reply entry per id sent
        accepted = {i: seq for i, seq in replies if seq}
        assert Counter(i for i, seq in replies if seq) == Counter(every)  # each once
        stored = Counter(e.event_id for e in plain.iter_events())
        assert stored == Counter(every)  # each id logged once
        assert {e.event_id: e.seq for e in plain.iter_events()} == accepted
    finally:
        grouped.close()
        plain.close()


def test_a_log_made_before_experiments_gets_their_columns(backend: tuple[str, str | None]) -> None:
    """A served table without `experiment` and `variant` (written by an older nextbest) gains
    them when the log is opened, and keeps its rows."""
    url, schema = backend
    engine = open_engine(url)
    table = f"{schema}.served" if schema else "served"
    with engine.begin() as connection:
        if schema:
            connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        connection.exec_driver_sql(
            f"CREATE TABLE {table} (recommendation_id VARCHAR(200) PRIMARY KEY, served_at FLOAT "
            "NOT NULL, session_id VARCHAR(200), user_id VARCHAR(200), placement VARCHAR(200), "
            "item_id VARCHAR(200), model_version VARCHAR(200), items TEXT NOT NULL)"
        )
        connection.exec_driver_sql(
            f"INSERT INTO {table} VALUES ('old', 1.0, 's', NULL, 'home', NULL, 'v0', '[]')"
        )
    engine.dispose()
    log = open_event_log(url, schema)
    try:
        assert log.served("old") == ServedList("old", 1.0, "s", None, "home", None, "v0", ())
        kept = ServedList("new", 2.0, "s", None, "home", None, "v1", (), "exp", "b", "session:s")
        log.record_served([kept])
        assert log.served("new") == kept
    finally:
        log.close()


def test_erasing_a_user_deletes_their_sessions_links_and_lists_and_nothing_else(
    log: EventLog,
) -> None:
    log.append([view("a1", "anon-then-login", "i1"), view("k1", "bystander", "i1")])
    log.link("anon-then-login", "ghost")  # the login: its earlier event is the user's too
    log.append([view("a2", "second", "i2", user_id="ghost"), view("k2", "bystander", "i2")])
    # an event naming the user in a session that belongs to someone else
    log.link("shared", "other")
    log.append([view("a3", "shared", "i3", user_id="ghost"), view("k3", "shared", "i3")])
    lists = [
        ServedList("r-user", 1.0, None, "ghost", "home", None, None, ()),
        ServedList("r-session", 1.0, "anon-then-login", None, "home", None, None, ()),
        ServedList("r-keep", 1.0, "bystander", "other", "home", None, None, ()),
    ]
    log.record_served(lists)
    erased = log.erase_user("ghost")
    assert erased.sessions == ("anon-then-login", "second") and erased.others == ("shared",)
    assert (erased.events, erased.links, erased.served) == (3, 2, 2)
    left = log.export()
    assert sorted(left["event_id"].to_list()) == ["k1", "k2", "k3"]
    assert log.session_owners(["anon-then-login", "second", "shared"]) == {"shared": "other"}
    assert log.served("r-keep") is not None and log.served("r-user") is None
    again = log.erase_user("ghost")
    assert (again.sessions, again.others, again.events, again.links, again.served) == (
        (),
        (),
        0,
        0,
        0,
    )


def test_retention_deletes_the_oldest_events_and_links_in_chunks(log: EventLog) -> None:
    log.append([view(f"old{k}", f"s{k}", "i1") for k in range(5)], received_at=100.0)
    log.link("s0", "u0", at=100.0)
    log.append([view("new", "s9", "i1")], received_at=200.0)
    log.link("s9", "u9", at=200.0)
    assert log.forget_events(before=150.0, limit=2) == 2
    assert log.forget_events(before=150.0, limit=100) == 3
    assert log.forget_events(before=150.0, limit=100) == 0
    assert log.export()["event_id"].to_list() == ["new"]
    assert log.session_owners(["s0", "s9"]) == {"s9": "u9"}
