"""The event log in SQL (SQLAlchemy Core): SQLite by default, PostgreSQL in production.

An append is one transaction: `INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING event_id`
tells, in one round trip, which events were new; the call returns after the commit, so a
caller that acknowledges an event only after `append` returns never acknowledges a lost one.
The same transaction links each session to the user of its first event that names one
(`identities`, first link wins), so an event and its session's owner are committed together.
On SQLite the append runs the same statements in SQLite's own SQL on the driver's connection
(`_append_sqlite`): a server appends one event at a time, and SQLAlchemy's execution machinery
cost more CPU per append than SQLite's work.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import asdict
from typing import Any

import polars as pl
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    Row,
    Select,
    Table,
    bindparam,
    func,
    inspect,
    literal,
    select,
    text,
    union_all,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.schema import CreateSchema

from nextbest.events.log.base import (
    AppendResult,
    Erased,
    EventLog,
    LoggedEvent,
    ServedList,
    check_batch,
    event_row,
)
from nextbest.events.log.database import upsert_statement, write_lock
from nextbest.events.log.migrate import migrate
from nextbest.events.log.tables import log_tables, trigger_tables
from nextbest.events.schema import Event

logger = logging.getLogger(__name__)

# Parameters per statement stay well below SQLite's and psycopg's limits.
SQL_CHUNK = 500
RETRYABLE = {"40P01", "40001"}  # PostgreSQL: deadlock detected, serialization failure
DEADLOCK_TRIES = 5


class SqlEventLog(EventLog):
    """The event log in the database behind `engine` (tables created when missing)."""

    def __init__(self, engine: Engine, schema: str | None = None) -> None:
        if schema is not None and engine.dialect.name != "postgresql":
            raise ValueError(f"a database schema ({schema!r}) needs PostgreSQL; SQLite has none")
        self.engine = engine
        self.commits_in_seq_order = engine.dialect.name == "sqlite"  # one writer at a time
        tables = log_tables(schema)
        self.metadata, self.events, self.identities, self.served_table = (
            tables.metadata,
            tables.events,
            tables.identities,
            tables.served,
        )
        if schema is not None:
            with engine.begin() as connection:
                connection.execute(CreateSchema(schema, if_not_exists=True))
        migrate(engine, schema)  # the tables as this release needs them (Alembic)
        _, _, pending, last, outbox = trigger_tables(schema)
        self.trigger_rows = (pending, last, outbox)
        # Built once: SQLAlchemy then reuses their compiled SQL (building them per call costs
        # more than running them).
        table = self.events
        self._insert = (
            upsert_statement(engine, table)
            .on_conflict_do_nothing(index_elements=[table.c.event_id])
            .returning(table.c.event_id, table.c.seq)
        )
        self._insert_columns = tuple(c.name for c in table.c if c.name != "seq")
        self._insert_sql: dict[int, str] = {}  # rows -> the multi-row INSERT's SQL
        self._sessions = _last_per_key(table, table.c.session_id, table.c.seq, None)
        self._one_session = (
            select(table)
            .where(table.c.session_id == bindparam("key"))
            .order_by(table.c.seq.desc())
            .limit(bindparam("last"))
        )
        links = self.identities
        # per session, how many events it has, and a row with n = -1 if it has an owner
        self._session_past = union_all(
            select(table.c.session_id, func.count().label("n"))
            .where(table.c.session_id.in_(bindparam("keys", expanding=True)))
            .group_by(table.c.session_id),
            select(links.c.session_id, literal(-1).label("n")).where(
                links.c.session_id.in_(bindparam("keys", expanding=True))
            ),
        )
        self._items_after = (
            select(table.c.seq, table.c.session_id, table.c.item_id)
            .where(table.c.seq > bindparam("after"))
            .order_by(table.c.seq)
            .limit(bindparam("limit"))
        )
        kept = self.served_table
        self._keep_served = upsert_statement(engine, kept).on_conflict_do_nothing(
            index_elements=[kept.c.recommendation_id]
        )
        self._owners = select(links.c.session_id, links.c.user_id).where(
            links.c.session_id.in_(bindparam("keys", expanding=True))
        )
        self._link = upsert_statement(engine, links).on_conflict_do_nothing(
            index_elements=[links.c.session_id]
        )
        self._user_sessions = _last_per_key(links, links.c.user_id, links.c.linked_at, None)
        # A purchase counts for the owner of its session (the join gives each event one owner).
        owned = select(table, links.c.user_id.label("owner")).join(
            links, links.c.session_id == table.c.session_id
        )
        rank = func.row_number().over(partition_by=links.c.user_id, order_by=table.c.seq.desc())
        ranked = (
            owned.add_columns(rank.label("rank"))
            .where(links.c.user_id.in_(bindparam("keys", expanding=True)))
            .where(table.c.type == "purchase")
            .where(table.c.item_id.is_not(None))
            .subquery()
        )
        self._purchase_query = (
            select(ranked.c.owner, ranked.c.item_id, ranked.c.timestamp)
            .where(ranked.c.rank <= bindparam("last"))
            .order_by(ranked.c.owner, ranked.c.seq)
        )
        # SQLite's append runs these on the driver's connection, compiled once (a link's
        # values bound by position, in the statement's order)
        self._past_compiled = self._session_past.compile(dialect=engine.dialect)
        link = self._link.compile(dialect=engine.dialect)
        self._link_compiled = (str(link), tuple(link.positiontup or ()))

    def append(
        self,
        events: Sequence[Event],
        received_at: float | None = None,
        probe: Collection[str] = (),
    ) -> AppendResult:
        now = time.time() if received_at is None else received_at
        first: dict[str, int] = {}
        for position, event in enumerate(events):
            first.setdefault(event.event_id, position)
        rows = [event_row(events[position], now) for position in first.values()]
        new: dict[str, int] = {}
        started: frozenset[str] = frozenset()
        if rows and self.commits_in_seq_order:
            new, started = self._append_sqlite(events, first, rows, probe, now)
        elif rows:
            new, started = self._append_postgresql(events, first, rows, probe, now)
        seqs = tuple(
            new.get(event.event_id, 0) if first[event.event_id] == position else 0
            for position, event in enumerate(events)
        )
        return AppendResult(seqs, started)

    def _append_postgresql(
        self,
        events: Sequence[Event],
        first: dict[str, int],
        rows: list[dict[str, object]],
        probe: Collection[str],
        now: float,
    ) -> tuple[dict[str, int], frozenset[str]]:
        """One transaction of SQLAlchemy's statements (their locking order, which the tests
        pin, matters to PostgreSQL's concurrent writers), tried again when PostgreSQL aborts
        it to break a deadlock."""
        for attempt in range(1, DEADLOCK_TRIES + 1):
            new: dict[str, int] = {}
            try:
                with self.engine.begin() as connection:
                    for start in range(0, len(rows), SQL_CHUNK):
                        chunk = rows[start : start + SQL_CHUNK]
                        for event_id, seq in connection.execute(self._insert, chunk):
                            new[event_id] = seq

                    def past(keys: list[str]) -> list[tuple[str, int]]:
                        found = connection.execute(self._session_past, {"keys": keys})
                        return [(row.session_id, row.n) for row in found]

                    started = self._started_sessions(events, first, new, probe, past)
                    links = _first_users(events, now)
                    for start in range(0, len(links), SQL_CHUNK):
                        connection.execute(self._link, links[start : start + SQL_CHUNK])
                return new, started
            except OperationalError as exc:
                # two writers inserting the same new ids can each wait for the other's row;
                # PostgreSQL aborts one transaction (nothing of it is kept): again
                if _sqlstate(exc) not in RETRYABLE or attempt == DEADLOCK_TRIES:
                    raise
                logger.warning("event append hit %s; trying again (%d)", _sqlstate(exc), attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _append_sqlite(
        self,
        events: Sequence[Event],
        first: dict[str, int],
        rows: list[dict[str, object]],
        probe: Collection[str],
        now: float,
    ) -> tuple[dict[str, int], frozenset[str]]:
        """The same statements in one transaction, on the driver's own connection: one
        multi-row INSERT in SQLite's SQL, and `_session_past` and `_link` compiled once for
        SQLite. SQLAlchemy's execution machinery (contexts, result objects, the expanding
        parameters) cost more CPU per append of one event than SQLite's own work, fsync
        included, and a server appends one at a time."""
        new: dict[str, int] = {}
        with write_lock(self.engine), self.engine.connect() as connection:
            raw = connection.connection.driver_connection
            assert raw is not None
            cursor = raw.cursor()
            try:  # the driver opens the transaction at the first INSERT
                for start in range(0, len(rows), SQL_CHUNK):
                    chunk = rows[start : start + SQL_CHUNK]
                    values = tuple(row[name] for row in chunk for name in self._insert_columns)
                    cursor.execute(self._insert_sql_for(len(chunk)), values)
                    new.update(cursor.fetchall())

                def past(keys: list[str]) -> list[tuple[str, int]]:
                    expanded = self._past_compiled.construct_expanded_state({"keys": keys})
                    parameters, order = expanded.parameters, expanded.positiontup or ()
                    cursor.execute(expanded.statement, [parameters[name] for name in order])
                    found: list[tuple[str, int]] = cursor.fetchall()
                    return found

                started = self._started_sessions(events, first, new, probe, past)
                link_sql, link_order = self._link_compiled
                links = [
                    tuple(link[name] for name in link_order) for link in _first_users(events, now)
                ]
                if links:
                    cursor.executemany(link_sql, links)
                raw.commit()
            except BaseException:
                raw.rollback()
                raise
            finally:
                cursor.close()
        return new, started

    def _insert_sql_for(self, n: int) -> str:
        """The multi-row INSERT of `n` rows in the driver's own SQL (SQLite): SQLAlchemy's
        executemany with RETURNING processes every parameter of every row in Python."""
        sql = self._insert_sql.get(n)
        if sql is None:
            sql = self._insert_sql[n] = self._multi_row_insert(n)
        return sql

    def _multi_row_insert(self, n: int) -> str:
        preparer = self.engine.dialect.identifier_preparer
        one = "(" + ", ".join(["?"] * len(self._insert_columns)) + ")"
        names = ", ".join(preparer.quote(name) for name in self._insert_columns)
        return (
            f"INSERT INTO {preparer.format_table(self.events)} ({names}) VALUES "
            + ", ".join([one] * n)
            + f" ON CONFLICT ({preparer.quote('event_id')}) DO NOTHING"
            + f" RETURNING {preparer.quote('event_id')}, {preparer.quote('seq')}"
        )

    def _started_sessions(
        self,
        events: Sequence[Event],
        first: dict[str, int],
        new: dict[str, int],
        probe: Collection[str],
        past: Callable[[list[str]], list[tuple[str, int]]],
    ) -> frozenset[str]:
        """The probed sessions of this append that had no event and no owner before it (in
        its transaction, before its links are written): those whose every visible event was
        just inserted, and that have no owner yet. `past(keys)`: (session, its events'
        count, or -1 for a session with an owner) from the append's transaction."""
        inserted: Counter[str] = Counter()
        for event_id, position in first.items():
            session = events[position].session_id
            if event_id in new and session in probe:
                inserted[session] += 1
        started = set(inserted)
        for chunk in _chunks(list(inserted)):
            for session, n in past(chunk):
                if n != inserted[session]:  # n = -1: an owner
                    started.discard(session)
        return frozenset(started)

    def session_events(self, session_ids: Sequence[str], last: int) -> dict[str, list[LoggedEvent]]:
        found: dict[str, list[LoggedEvent]] = {}
        for chunk in _chunks(session_ids):
            with self.engine.connect() as connection:
                if len(chunk) == 1:  # the common case (one new session), on the plain index
                    parameters = {"key": chunk[0], "last": last}
                    rows = reversed(list(connection.execute(self._one_session, parameters)))
                else:
                    rows = connection.execute(self._sessions, {"keys": chunk, "last": last})
                for row in rows:
                    found.setdefault(row.session_id, []).append(_logged(row))
        return found

    def user_purchase_times(
        self, user_ids: Sequence[str], last: int
    ) -> dict[str, list[tuple[str, float]]]:
        found: dict[str, list[tuple[str, float]]] = {}
        for chunk in _chunks(user_ids):
            with self.engine.connect() as connection:
                rows = connection.execute(self._purchase_query, {"keys": chunk, "last": last})
                for row in rows:
                    found.setdefault(row.owner, []).append((row.item_id, float(row.timestamp)))
        return found

    def link(self, session_id: str, user_id: str, at: float | None = None) -> str:
        row = {"session_id": session_id, "user_id": user_id, "linked_at": _now(at)}
        with write_lock(self.engine), self.engine.begin() as connection:
            connection.execute(self._link, [row])
            owner = connection.execute(self._owners, {"keys": [session_id]}).one().user_id
        return str(owner)

    def session_owners(self, session_ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in _chunks(session_ids):
            with self.engine.connect() as connection:
                rows = connection.execute(self._owners, {"keys": chunk})
                found.update({row.session_id: row.user_id for row in rows})
        return found

    def user_sessions(self, user_ids: Sequence[str], last: int) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for chunk in _chunks(user_ids):
            with self.engine.connect() as connection:
                rows = connection.execute(self._user_sessions, {"keys": chunk, "last": last})
                for row in rows:
                    found.setdefault(row.user_id, []).append(row.session_id)
        return found

    def export(self, batch_size: int = 10_000) -> pl.DataFrame:
        """As `EventLog.export`, with `user_id` the owner of each event's session where it
        has one: events logged before a login count for the user who logged in."""
        table = super().export(batch_size)
        links = self.identities
        with self.engine.connect() as connection:
            rows = connection.execute(select(links.c.session_id, links.c.user_id)).all()
        owners = pl.DataFrame(
            {"session_id": [r.session_id for r in rows], "owner": [r.user_id for r in rows]},
            schema={"session_id": pl.String, "owner": pl.String},
        )
        return (
            table.join(owners, on="session_id", how="left", maintain_order="left")
            .with_columns(pl.coalesce("owner", "user_id").alias("user_id"))
            .drop("owner")
        )

    def record_served(self, lists: Sequence[ServedList]) -> None:
        rows = [{**asdict(served), "items": _items_json(served.items)} for served in lists]
        if not rows:
            return
        with write_lock(self.engine), self.engine.begin() as connection:
            for start in range(0, len(rows), SQL_CHUNK):
                connection.execute(self._keep_served, rows[start : start + SQL_CHUNK])

    def served(self, recommendation_id: str) -> ServedList | None:
        table = self.served_table
        query = select(table).where(table.c.recommendation_id == recommendation_id)
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else _served_list(row)

    def served_lists(
        self,
        placement: str,
        since: float | None = None,
        until: float | None = None,
        batch: int = 5_000,
        experiment: str | None = None,
    ) -> Iterator[ServedList]:
        check_batch(batch)
        table = self.served_table
        query = select(table).where(table.c.placement == placement)
        if experiment is not None:
            query = query.where(table.c.experiment == experiment)
        if since is not None:
            query = query.where(table.c.served_at >= since)
        if until is not None:
            query = query.where(table.c.served_at < until)
        query = query.order_by(table.c.served_at, table.c.recommendation_id).limit(batch)
        # after the last list of a batch: a later time, or the same time and a greater id
        # (written so that the first condition can use the index on served_at)
        after = query.where(
            table.c.served_at >= bindparam("at"),
            (table.c.served_at > bindparam("at"))
            | (table.c.recommendation_id > bindparam("last_id")),
        )
        return self._pages(query, after, batch)

    def _pages(self, first: Select[Any], after: Select[Any], batch: int) -> Iterator[ServedList]:
        """Each batch in its own short connection: a slow consumer holds no transaction."""
        with self.engine.connect() as connection:
            page = [_served_list(row) for row in connection.execute(first)]
        while page:
            yield from page
            if len(page) < batch:
                return
            at, last_id = page[-1].served_at, page[-1].recommendation_id
            with self.engine.connect() as connection:
                rows = connection.execute(after, {"at": at, "last_id": last_id})
                page = [_served_list(row) for row in rows]

    def events_of_type(
        self,
        event_type: str,
        since: float | None = None,
        until: float | None = None,
        batch: int = 10_000,
    ) -> Iterator[LoggedEvent]:
        check_batch(batch)
        table = self.events
        query = select(table).where(table.c.type == event_type, table.c.seq > bindparam("after"))
        if since is not None:
            query = query.where(table.c.received_at >= since)
        if until is not None:
            query = query.where(table.c.received_at < until)
        return self._events_after(query.order_by(table.c.seq).limit(batch), batch)

    def _events_after(self, query: Select[Any], batch: int) -> Iterator[LoggedEvent]:
        seq = 0
        while True:
            with self.engine.connect() as connection:
                page = [_logged(row) for row in connection.execute(query, {"after": seq})]
            yield from page
            if len(page) < batch:
                return
            seq = page[-1].seq

    def erase_user(self, user_id: str) -> Erased:
        events, links, served = self.events, self.identities, self.served_table
        with write_lock(self.engine), self.engine.begin() as connection:
            sessions = tuple(
                sorted(
                    connection.execute(
                        select(links.c.session_id).where(links.c.user_id == user_id)
                    ).scalars()
                )
            )
            named = connection.execute(
                select(events.c.session_id).where(events.c.user_id == user_id).distinct()
            ).scalars()
            others = tuple(sorted(set(named) - set(sessions)))  # sessions of other users
            n_events = connection.execute(events.delete().where(events.c.user_id == user_id))
            n_served = connection.execute(served.delete().where(served.c.user_id == user_id))
            erased_events, erased_served = n_events.rowcount, n_served.rowcount
            for chunk in _chunks(sessions):
                erased_events += connection.execute(
                    events.delete().where(events.c.session_id.in_(chunk))
                ).rowcount
                erased_served += connection.execute(
                    served.delete().where(served.c.session_id.in_(chunk))
                ).rowcount
            n_links = connection.execute(links.delete().where(links.c.user_id == user_id))
            for table in self.trigger_rows:  # what the trigger channels hold of the user
                connection.execute(table.delete().where(table.c.user_id == user_id))
        return Erased(
            sessions, others, int(erased_events), int(n_links.rowcount), int(erased_served)
        )

    def forget_events(self, before: float, limit: int) -> int:
        events, links = self.events, self.identities
        oldest = (
            select(events.c.seq)
            .where(events.c.received_at < before)
            .order_by(events.c.seq)  # the oldest come first: the scan stops after `limit`
            .limit(limit)
        )
        with self.engine.connect() as connection:  # nothing to delete: no write lock taken
            if connection.execute(oldest.limit(1)).first() is None:
                return 0
        with write_lock(self.engine), self.engine.begin() as connection:
            gone = connection.execute(
                events.delete().where(events.c.seq.in_(oldest.scalar_subquery()))
            )
            connection.execute(links.delete().where(links.c.linked_at < before))
            return int(gone.rowcount)

    def forget_served(self, before: float, limit: int) -> int:
        table = self.served_table
        oldest = (
            select(table.c.recommendation_id)
            .where(table.c.served_at < before)
            .order_by(table.c.served_at)
            .limit(limit)
        )
        statement = table.delete().where(table.c.recommendation_id.in_(oldest.scalar_subquery()))
        with self.engine.connect() as connection:  # nothing to delete: no write lock taken
            if connection.execute(oldest.limit(1)).first() is None:
                return 0
        with write_lock(self.engine), self.engine.begin() as connection:
            return int(connection.execute(statement).rowcount)

    def outcomes(self, recommendation_id: str, last: int) -> list[LoggedEvent]:
        table = self.events
        query = (
            select(table)
            .where(table.c.recommendation_id == recommendation_id)
            .order_by(table.c.seq)
            .limit(last)
        )
        with self.engine.connect() as connection:
            return [_logged(row) for row in connection.execute(query)]

    def read_after(self, seq: int, limit: int) -> list[LoggedEvent]:
        table = self.events
        query = select(table).where(table.c.seq > seq).order_by(table.c.seq).limit(limit)
        with self.engine.connect() as connection:
            return [_logged(row) for row in connection.execute(query)]

    def read_items_after(self, seq: int, limit: int) -> list[tuple[int, str, str | None]]:
        # three columns as plain tuples: a tenth of the cost of `read_after` per row
        with self.engine.connect() as connection:
            rows = connection.execute(self._items_after, {"after": seq, "limit": limit})
            return [tuple(row) for row in rows]  # type: ignore[misc]

    def count(self) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.execute(select(func.count()).select_from(self.events)).scalar_one()
            )

    def last_seq(self) -> int:
        with self.engine.connect() as connection:
            value = connection.execute(select(func.max(self.events.c.seq))).scalar_one()
        return int(value or 0)

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()


def _sqlstate(error: OperationalError) -> str | None:
    code = getattr(error.orig, "sqlstate", None)
    return code if isinstance(code, str) else None


def add_missing_columns(connection: Connection, table: Table) -> None:
    """A log made before a (nullable) column was added to `table` gets it."""
    present = {c["name"] for c in inspect(connection).get_columns(table.name, table.schema)}
    preparer = connection.dialect.identifier_preparer
    for column in table.columns:
        if column.name not in present:
            kind = column.type.compile(dialect=connection.dialect)
            connection.execute(
                text(
                    f"ALTER TABLE {preparer.format_table(table)} "
                    f"ADD COLUMN {preparer.format_column(column)} {kind}"
                )
            )


def _logged(row: Row[tuple[object, ...]]) -> LoggedEvent:
    return LoggedEvent(**row._asdict())


def _served_list(row: Row[Any]) -> ServedList:
    items = tuple((str(i), str(s), float(v)) for i, s, v in json.loads(row.items))
    return ServedList(**{**row._asdict(), "items": items})


def _now(at: float | None) -> float:
    return time.time() if at is None else at


def _first_users(events: Sequence[Event], at: float) -> list[dict[str, object]]:
    """One link per session: the user of its first event in `events` that names one."""
    first: dict[str, str] = {}
    for event in events:
        if event.user_id:
            first.setdefault(event.session_id, event.user_id)
    return [
        {"session_id": session, "user_id": user, "linked_at": at} for session, user in first.items()
    ]


def _chunks(keys: Sequence[str]) -> list[list[str]]:
    distinct = list(dict.fromkeys(keys))
    return [distinct[start : start + SQL_CHUNK] for start in range(0, len(distinct), SQL_CHUNK)]


def _last_per_key(
    table: Table, key: Column[str], order: Column[Any], where: ColumnElement[bool] | None
) -> Select[Any]:
    """The last `:last` rows (by `order`) of each of the `:keys`, oldest first, by key."""
    rank = func.row_number().over(partition_by=key, order_by=order.desc()).label("rank")
    condition: ColumnElement[bool] = key.in_(bindparam("keys", expanding=True))
    if where is not None:
        condition = condition & where
    ranked = select(table, rank).where(condition).subquery()
    return (
        select(*[ranked.c[column.name] for column in table.columns])
        .where(ranked.c.rank <= bindparam("last"))
        .order_by(ranked.c[key.name], ranked.c[order.name])
    )


def _items_json(items: Sequence[tuple[str, str, float]]) -> str:
    """A served list's items as stored: [[item_id, source, score], ...]."""
    return json.dumps([list(item) for item in items], separators=(",", ":"))
