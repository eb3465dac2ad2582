"""A small event table from rows, for tests: `event_table(rows, ("session_id", "type", ...))`
gives each row an event id and the EVENT_SCHEMA columns (the ones not named are null)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from nextbest.events.schema import conform_events


def event_table(rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> pl.DataFrame:
    data: dict[str, list[Any]] = {"event_id": [f"e{k}" for k in range(len(rows))]}
    for index, name in enumerate(columns):
        data[name] = [row[index] for row in rows]
    return conform_events(pl.DataFrame(data, schema_overrides={"item_id": pl.String}))
