"""The event log in SQL (SQLAlchemy Core): SQLite by default, PostgreSQL in production.

An append is one transaction: `INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING event_id`
tells, in one round trip, which events were new; the call returns after the commit, so a
caller that acknowledges an event only after `append` returns never acknowledges a lost one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Engine,
    Row,
    Select,
    Table,
    bindparam,
    func,
    select,
    text,
)
from sqlalchemy.schema import CreateSchema

from nextbest.events.log.base import AppendResult, EventLog, LoggedEvent, event_row
from nextbest.events.log.database import upsert_statement, write_lock
from nextbest.events.log.tables import log_tables
from nextbest.events.schema import Event

# Parameters per statement stay well below SQLite's and psycopg's limits.
SQL_CHUNK = 500


class SqlEventLog(EventLog):
    """The event log in the database behind `engine` (tables created when missing)."""

    def __init__(self, engine: Engine, schema: str | None = None) -> None:
        if schema is not None and engine.dialect.name != "postgresql":
            raise ValueError(f"a database schema ({schema!r}) needs PostgreSQL; SQLite has none")
        self.engine = engine
        self.metadata, self.events, _ = log_tables(schema)
        with engine.begin() as connection:
            if schema is not None:
                connection.execute(CreateSchema(schema, if_not_exists=True))
            self.metadata.create_all(connection)
        # Built once: SQLAlchemy then reuses their compiled SQL (building them per call costs
        # more than running them).
        table = self.events
        self._sessions = _last_per_key(table, table.c.session_id, None)
        self._one_session = (
            select(table)
            .where(table.c.session_id == bindparam("key"))
            .order_by(table.c.seq.desc())
            .limit(bindparam("last"))
        )
        purchases = (self.events.c.type == "purchase") & self.events.c.user_id.is_not(None)
        self._purchase_query = _last_per_key(self.events, self.events.c.user_id, purchases)

    def append(self, events: Sequence[Event], received_at: float | None = None) -> AppendResult:
        now = time.time() if received_at is None else received_at
        first: dict[str, int] = {}
        for position, event in enumerate(events):
            first.setdefault(event.event_id, position)
        rows = [event_row(events[position], now) for position in first.values()]
        new: dict[str, int] = {}
        if rows:
            table = self.events
            statement = (
                upsert_statement(self.engine, table)
                .on_conflict_do_nothing(index_elements=[table.c.event_id])
                .returning(table.c.event_id, table.c.seq)
            )
            with write_lock(self.engine), self.engine.begin() as connection:
                for start in range(0, len(rows), SQL_CHUNK):
                    chunk = rows[start : start + SQL_CHUNK]
                    for event_id, seq in connection.execute(statement, chunk):
                        new[event_id] = seq
        seqs = tuple(
            new.get(event.event_id, 0) if first[event.event_id] == position else 0
            for position, event in enumerate(events)
        )
        return AppendResult(seqs)

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

    def user_purchases(self, user_ids: Sequence[str], last: int) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for chunk in _chunks(user_ids):
            with self.engine.connect() as connection:
                rows = connection.execute(self._purchase_query, {"keys": chunk, "last": last})
                for row in rows:
                    found.setdefault(row.user_id, []).append(row.item_id)
        return found

    def read_after(self, seq: int, limit: int) -> list[LoggedEvent]:
        table = self.events
        query = select(table).where(table.c.seq > seq).order_by(table.c.seq).limit(limit)
        with self.engine.connect() as connection:
            return [_logged(row) for row in connection.execute(query)]

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


def _logged(row: Row[tuple[object, ...]]) -> LoggedEvent:
    return LoggedEvent(**row._asdict())


def _chunks(keys: Sequence[str]) -> list[list[str]]:
    distinct = list(dict.fromkeys(keys))
    return [distinct[start : start + SQL_CHUNK] for start in range(0, len(distinct), SQL_CHUNK)]


def _last_per_key(table: Table, key: Column[str], where: ColumnElement[bool] | None) -> Select[Any]:
    """The last `:last` rows (by seq) of each of the `:keys`, oldest first, grouped by key."""
    rank = func.row_number().over(partition_by=key, order_by=table.c.seq.desc()).label("rank")
    condition: ColumnElement[bool] = key.in_(bindparam("keys", expanding=True))
    if where is not None:
        condition = condition & where
    ranked = select(table, rank).where(condition).subquery()
    return (
        select(*[ranked.c[column.name] for column in table.columns])
        .where(ranked.c.rank <= bindparam("last"))
        .order_by(ranked.c[key.name], ranked.c.seq)
    )
