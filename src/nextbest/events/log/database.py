"""Opening the database behind the event log and the catalog: SQLite (embedded) or PostgreSQL.

SQLite runs in WAL mode: readers never block the writer, and a commit is one append to the
write-ahead log. `synchronous=FULL` (the default here) syncs that append to disk before the
commit returns, so an acknowledged event survives a power cut, not only a killed process;
`NORMAL` trades that for speed.

Several processes may share the file (server workers). SQLite lets one write at a time, and a
writer that finds the file locked polls with growing sleeps (1, 2, 5, ... 100 ms), which
under load costs far more than the write itself. So writers first queue on `write_lock`: an
exclusive `flock` on a file beside the database (plus a thread lock within the process),
which the kernel hands to the next waiter the moment it is released.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import ConnectionPoolEntry

SqliteSync = Literal["FULL", "NORMAL"]
SQLITE_FILE = "events.db"
BUSY_TIMEOUT_MS = 30_000


def sqlite_url(home: Path) -> str:
    """The embedded default: one SQLite file under the data folder."""
    return f"sqlite+pysqlite:///{(home / SQLITE_FILE).resolve()}"


def open_engine(url: str, synchronous: SqliteSync = "FULL") -> Engine:
    """An engine for `url`: `sqlite+pysqlite:///path` or `postgresql+psycopg://...`."""
    if url.startswith("sqlite"):
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"SQLite synchronous must be FULL or NORMAL, not {synchronous!r}")
        if ":memory:" in url or url.rstrip("/").endswith("sqlite:"):
            raise ValueError(f"the event log needs a SQLite file, not an in-memory database: {url}")
        path = Path(url.split("///", 1)[1]) if "///" in url else None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas(synchronous))
        return engine
    if url.startswith("postgresql"):
        if not url.startswith("postgresql+psycopg:"):
            raise ValueError(
                f"PostgreSQL URLs must use the psycopg driver: postgresql+psycopg://..., not {url}"
            )
        return create_engine(url, pool_size=8, max_overflow=8, pool_recycle=1800)
    raise ValueError(
        f"unsupported database URL {url!r}: use sqlite+pysqlite:///PATH or postgresql+psycopg://..."
    )


def _sqlite_pragmas(synchronous: SqliteSync) -> Any:
    def on_connect(connection: Any, record: ConnectionPoolEntry) -> None:
        cursor = connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {synchronous}")
        cursor.close()

    return on_connect


def upsert_statement(engine: Engine, table: Table) -> sqlite.Insert | postgresql.Insert:
    """The dialect's INSERT, which knows ON CONFLICT (both SQLite and PostgreSQL do)."""
    if engine.dialect.name == "sqlite":
        return sqlite.insert(table)
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table)
    raise ValueError(f"unsupported database dialect {engine.dialect.name!r}")


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_REGISTRY_LOCK = threading.Lock()


@contextlib.contextmanager
def write_lock(engine: Engine) -> Iterator[None]:
    """Hold while writing: serialises writers of one SQLite file across threads and processes
    (PostgreSQL needs nothing of the kind)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database:
        yield
        return
    with _REGISTRY_LOCK:
        lock = _THREAD_LOCKS.setdefault(database, threading.Lock())
    with lock:
        descriptor = os.open(f"{database}.write-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # closing releases the flock
