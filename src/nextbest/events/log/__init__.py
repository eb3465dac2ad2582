"""The durable event log: append-only, idempotent on `event_id`, SQLite or PostgreSQL."""

from __future__ import annotations

from nextbest.events.log.base import AppendResult, Erased, EventLog, LoggedEvent, ServedList
from nextbest.events.log.database import SqliteSync, open_engine, sqlite_url
from nextbest.events.log.group import GroupCommitLog
from nextbest.events.log.sql import SqlEventLog


def open_event_log(
    url: str, schema: str | None = None, synchronous: SqliteSync = "FULL"
) -> SqlEventLog:
    """The event log at `url` (`sqlite+pysqlite:///PATH` or `postgresql+psycopg://...`)."""
    return SqlEventLog(open_engine(url, synchronous), schema)


__all__ = [
    "AppendResult",
    "Erased",
    "EventLog",
    "GroupCommitLog",
    "LoggedEvent",
    "ServedList",
    "SqlEventLog",
    "open_event_log",
    "sqlite_url",
]
