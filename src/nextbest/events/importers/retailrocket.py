"""RetailRocket, in its two public forms, told apart by the header.

* Kaggle `events.csv`: `timestamp,visitorid,event,itemid,transactionid`, the time in
  milliseconds, `event` one of view / addtocart / transaction (-> view / cart / purchase).
  The file has visitors, not sessions: `session_id` is set to the visitor id and data
  preparation splits each visitor's events into sessions by an inactivity gap, as it does
  for every source, so that the gap is chosen in one place.
* The tab-separated sample used by session papers (e.g. SR-GTM):
  `timestamp<TAB>user_id<TAB>item_id<TAB>session_id`, the time in seconds, all views.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from nextbest.events.importers._rows import (
    RowFilter,
    digits,
    event_ids,
    non_empty,
    number,
    one_of,
    seconds,
)
from nextbest.events.importers._text import locate_columns, read_header, read_table
from nextbest.events.importers.report import ImportResult, OnError
from nextbest.events.schema import EventType, conform_events

EVENT_TYPES = {
    "view": EventType.VIEW.value,
    "addtocart": EventType.CART.value,
    "transaction": EventType.PURCHASE.value,
}
_KAGGLE = {"time": "timestamp", "visitor": "visitorid", "event": "event", "item": "itemid"}
_SAMPLE = {"time": "timestamp", "user": "user_id", "item": "item_id", "session": "session_id"}


def import_retailrocket(path: str | Path, *, on_error: OnError = "raise") -> ImportResult:
    """Import `events.csv` or the tab-separated session sample."""
    path = Path(path)
    rows = RowFilter(path, on_error)
    with path.open("rb") as file:
        separator = "\t" if b"\t" in file.readline() else ","
    header = read_header(path, rows, separator, None)
    if separator == ",":
        fields = locate_columns(rows, header, _KAGGLE)
        checks = [
            digits("time", "timestamp"),
            non_empty("visitor", "visitorid"),
            one_of("event", "event", EVENT_TYPES),
            non_empty("item", "itemid"),
        ]
        select = [
            event_ids(path.stem),
            pl.col("event").replace_strict(EVENT_TYPES, return_dtype=pl.String).alias("type"),
            pl.col("visitor").alias("session_id"),
            pl.col("item").alias("item_id"),
            pl.col("visitor").alias("user_id"),
            seconds(pl.col("time"), 1000).alias("timestamp"),
        ]
    else:
        fields = locate_columns(rows, header, _SAMPLE)
        checks = [
            number("time", "timestamp"),
            non_empty("user", "user_id"),
            non_empty("item", "item_id"),
            non_empty("session", "session_id"),
        ]
        select = [
            event_ids(path.stem),
            pl.lit(EventType.VIEW.value).alias("type"),
            pl.col("session").alias("session_id"),
            pl.col("item").alias("item_id"),
            pl.col("user").alias("user_id"),
            pl.col("time").cast(pl.Float64).alias("timestamp"),
        ]
    events = read_table(
        path,
        rows,
        separator=separator,
        fields=fields,
        n_fields=len(header),
        checks=checks,
        select=select,
    )
    return ImportResult(conform_events(events), None, rows.report())
