"""The event log in SQL (SQLAlchemy Core): SQLite by default, PostgreSQL in production.

An append is one transaction: `INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING event_id`
tells, in one round trip, which events were new; the call returns after the commit, so a
caller that acknowledges an event only after `append` returns never acknowledges a lost one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import Engine, Row, func, select, text
from sqlalchemy.schema import CreateSchema

from nextbest.events.log.base import AppendResult, EventLog, LoggedEvent, event_row
from nextbest.events.log.database import upsert_statement
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
            with self.engine.begin() as connection:
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
        table = self.events
        found: dict[str, list[LoggedEvent]] = {}
        for start in range(0, len(session_ids), SQL_CHUNK):
            chunk = list(dict.fromkeys(session_ids[start : start + SQL_CHUNK]))
            rank = (
                func.row_number()
                .over(partition_by=table.c.session_id, order_by=table.c.seq.desc())
                .label("rank")
            )
            ranked = select(table, rank).where(table.c.session_id.in_(chunk)).subquery()
            query = (
                select(*[ranked.c[column.name] for column in table.columns])
                .where(ranked.c.rank <= last)
                .order_by(ranked.c.session_id, ranked.c.seq)
            )
            with self.engine.connect() as connection:
                for row in connection.execute(query):
                    found.setdefault(row.session_id, []).append(_logged(row))
        return found

    def user_purchases(self, user_ids: Sequence[str], last: int) -> dict[str, list[str]]:
        table = self.events
        found: dict[str, list[str]] = {}
        for start in range(0, len(user_ids), SQL_CHUNK):
            chunk = list(dict.fromkeys(user_ids[start : start + SQL_CHUNK]))
            purchases = (table.c.type == "purchase") & table.c.user_id.is_not(None)
            rank = (
                func.row_number()
                .over(partition_by=table.c.user_id, order_by=table.c.seq.desc())
                .label("rank")
            )
            ranked = (
                select(table.c.user_id, table.c.item_id, table.c.seq, rank)
                .where(purchases & table.c.user_id.in_(chunk))
                .subquery()
            )
            query = (
                select(ranked.c.user_id, ranked.c.item_id)
                .where(ranked.c.rank <= last)
                .order_by(ranked.c.user_id, ranked.c.seq)
            )
            with self.engine.connect() as connection:
                for user_id, item_id in connection.execute(query):
                    found.setdefault(user_id, []).append(item_id)
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
