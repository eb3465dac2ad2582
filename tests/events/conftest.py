"""What the event log's tests share."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextbest.events.log import sqlite_url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """(database URL, schema) of a fresh, empty database of each kind."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path), None
    url, schema = request.getfixturevalue("pg_schema")
    return url, schema
