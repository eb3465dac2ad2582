"""The event log's schema migrations (Alembic): a log the previous release made, with data in
it, is upgraded and keeps every row; a new log gets every revision; a log a newer nextbest
upgraded is refused with a clear message and left as it was. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from typer.testing import CliRunner

from nextbest.cli.main import app
from nextbest.events.log import open_event_log
from nextbest.events.log.database import open_engine
from nextbest.events.log.migrate import SchemaTooNew, current_revision, head_revision
from nextbest.events.log.tables import log_tables

TRIGGER_TABLES = {"trigger_cursor", "trigger_pending", "trigger_last", "trigger_outbox"}


def previous_release_log(url: str, schema: str | None) -> None:
    """The log as the release before migrations made it (its tables, made by create_all, no
    alembic_version), with rows in every table."""
    engine = open_engine(url)
    prefix = f"{schema}." if schema else ""
    with engine.begin() as connection:
        if schema:
            connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        log_tables(schema).metadata.create_all(connection)
        for k in range(3):
            connection.execute(
                text(
                    f"INSERT INTO {prefix}events (event_id, type, session_id, item_id, "
                    "user_id, timestamp, received_at) VALUES (:e, 'view', 's1', :i, 'u1', :t, :t)"
                ),
                {"e": f"e{k}", "i": f"i{k}", "t": 100.0 + k},
            )
        connection.execute(text(f"INSERT INTO {prefix}identities VALUES ('s1', 'u1', 100.0)"))
        connection.execute(
            text(
                f"INSERT INTO {prefix}served (recommendation_id, served_at, session_id, items) "
                "VALUES ('r1', 101.0, 's1', '[]')"
            )
        )
        connection.execute(
            text(
                f"INSERT INTO {prefix}items VALUES ('i0', 'Shoe', 'Shoes', NULL, 10.0, NULL, "
                "'{}', TRUE, 100.0)"
            )
        )
    engine.dispose()


def tables(url: str, schema: str | None) -> set[str]:
    engine = open_engine(url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names(schema=schema))
    finally:
        engine.dispose()


def revision(url: str, schema: str | None) -> str | None:
    engine = open_engine(url)
    try:
        with engine.connect() as connection:
            return current_revision(connection, schema)
    finally:
        engine.dispose()


def test_the_previous_release_log_is_upgraded_with_its_rows(
    backend: tuple[str, str | None],
) -> None:
    url, schema = backend
    previous_release_log(url, schema)
    assert revision(url, schema) is None and not tables(url, schema) & TRIGGER_TABLES
    log = open_event_log(url, schema)
    try:
        assert [e.event_id for e in log.read_after(0, 10)] == ["e0", "e1", "e2"]
        assert log.session_owners(["s1"]) == {"s1": "u1"}
        served = log.served("r1")
        assert served is not None and served.session_id == "s1"
        assert log.export()["event_id"].to_list() == ["e0", "e1", "e2"]
    finally:
        log.close()
    assert revision(url, schema) == head_revision()
    assert tables(url, schema) >= TRIGGER_TABLES
    open_event_log(url, schema).close()  # again: nothing to do, nothing fails
    assert revision(url, schema) == head_revision()


def test_a_new_log_gets_every_revision(backend: tuple[str, str | None]) -> None:
    url, schema = backend
    open_event_log(url, schema).close()
    assert revision(url, schema) == head_revision() == "0002"
    assert {"events", "items", "identities", "served"} | TRIGGER_TABLES <= tables(url, schema)


def test_a_log_from_a_newer_release_is_refused_and_left_alone(
    backend: tuple[str, str | None], tmp_path: Path
) -> None:
    url, schema = backend
    open_event_log(url, schema).close()
    engine = open_engine(url)
    prefix = f"{schema}." if schema else ""
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {prefix}alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(SchemaTooNew, match=r"schema revision '0099'.*a newer nextbest"):
        open_event_log(url, schema)
    assert revision(url, schema) == "0099"
    if schema is None:  # the CLI says so too, and changes nothing
        home = Path(url.split("///", 1)[1]).parent
        result = CliRunner().invoke(
            app, ["train", "--from-log", "--model", "pop"], env={"NEXTBEST_HOME": str(home)}
        )
        assert result.exit_code == 2 and "a newer nextbest upgraded it" in result.output
        assert revision(url, schema) == "0099"
