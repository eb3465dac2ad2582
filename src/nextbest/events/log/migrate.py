"""The event log's schema, kept current with Alembic migrations (`migrations/versions/`).

`migrate(engine, schema)` runs when a log is opened (the server does it once before its
workers start):

- a new database gets every revision in turn;
- a database made by a release before migrations (its tables, no `alembic_version`) is first
  brought to what that release's last version made (columns and indexes added over time),
  stamped as the baseline, then upgraded;
- a database at a revision this release does not know was upgraded by a newer nextbest: it is
  refused with `SchemaTooNew`, and nothing is changed.

Writers of one SQLite file queue on its write lock, and PostgreSQL's take an advisory lock, so
two processes opening a new log do not both migrate it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from nextbest.events.log.database import write_lock

SCRIPTS = Path(__file__).with_name("migrations")
BASELINE = "0001"
BASELINE_TABLES = {"events", "items", "identities", "served"}
MIGRATION_LOCK = 7_226_617  # PostgreSQL advisory lock key ("nb" migrations)
logging.getLogger("alembic").setLevel(logging.WARNING)  # not its INFO lines on every open


class SchemaTooNew(ValueError):
    """The database was upgraded by a newer nextbest than this one."""


def _config(connection: Connection | None = None, schema: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection, schema: str | None) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table_schema": schema})
    return context.get_current_revision()


def migrate(engine: Engine, schema: str | None = None) -> str:
    """Bring the log's schema to this release's head; returns the head revision."""
    where = engine.url.render_as_string(hide_password=True)
    scripts = ScriptDirectory.from_config(_config())
    known = {revision.revision for revision in scripts.walk_revisions()}
    with write_lock(engine), engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        current = current_revision(connection, schema)
        if current is not None and current not in known:
            raise SchemaTooNew(
                f"the event log at {where} is at schema revision {current!r}, which this "
                f"nextbest (schema {scripts.get_current_head()!r}) does not know: a newer "
                "nextbest upgraded it. Run that release, or restore a backup made before the "
                "upgrade; nothing was changed"
            )
        config = _config(connection, schema)
        present = set(inspect(connection).get_table_names(schema=schema))
        if current is None and present & BASELINE_TABLES:
            _bring_up_to_baseline(connection, schema)  # made before migrations
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")
    return head_revision()


def _bring_up_to_baseline(connection: Connection, schema: str | None) -> None:
    """A log made by a release before migrations has the baseline's tables, but an older one
    may lack tables, columns and indexes added since (nullable columns: adding them is safe)."""
    from nextbest.events.log.sql import add_missing_columns
    from nextbest.events.log.tables import log_tables

    tables = log_tables(schema)
    tables.metadata.create_all(connection)  # a table the release had not made yet
    add_missing_columns(connection, tables.served)
    for table in tables.metadata.sorted_tables:
        for index in table.indexes:
            index.create(connection, checkfirst=True)
