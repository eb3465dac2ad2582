"""The raw CIKM Cup 2016 (DIGINETICA) files, semicolon-separated with a header.

* `train-item-views.csv`: `session_id;user_id;item_id;timeframe;eventdate` -> "view" events
* `train-purchases.csv`: `sessionId;userId;timeframe;eventdate;ordernumber;itemId` -> "purchase"
* `product-categories.csv`: `itemId;categoryId` -> the items table (the category id is the path)

A user id of `NA` means anonymous. The files have no wall-clock time: `eventdate` is the day and
`timeframe` the milliseconds since the session started. We use
`timestamp = eventdate (midnight UTC, as epoch seconds) + timeframe / 1000`, which orders the
events of a session exactly (also for sessions that run past midnight) and orders sessions by
day; it is not the true time of day, so do not use it for time-of-day features.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from nextbest.events.importers._rows import (
    RowFilter,
    date,
    digits,
    event_ids,
    non_empty,
    parsed_date,
    seconds,
)
from nextbest.events.importers._text import locate_columns, read_header, read_table
from nextbest.events.importers.report import ImportReport, ImportResult, OnError
from nextbest.events.schema import EventType, conform_events, conform_items

VIEWS = "train-item-views.csv"
PURCHASES = "train-purchases.csv"
CATEGORIES = "product-categories.csv"

_VIEW_COLUMNS = {
    "session": "session_id",
    "user": "user_id",
    "item": "item_id",
    "timeframe": "timeframe",
    "date": "eventdate",
}
_PURCHASE_COLUMNS = {
    "session": "sessionId",
    "user": "userId",
    "item": "itemId",
    "timeframe": "timeframe",
    "date": "eventdate",
}


def _find(folder: Path, name: str) -> Path | None:
    """`name` in `folder`, or a single file ending in it (e.g. `sample_train-item-views.csv`)."""
    if (folder / name).is_file():
        return folder / name
    matches = sorted(folder.glob(f"*{name}"))
    return matches[0] if len(matches) == 1 else None


def _events(
    path: Path, columns: dict[str, str], event_type: str, on_error: OnError
) -> tuple[pl.DataFrame, ImportReport]:
    rows = RowFilter(path, on_error)
    header = read_header(path, rows, ";", None)
    fields = locate_columns(rows, header, columns)
    checks = [
        non_empty("session", columns["session"]),
        non_empty("user", columns["user"]),
        non_empty("item", columns["item"]),
        digits("timeframe", columns["timeframe"]),
        date("date", columns["date"]),
    ]
    day_ms = parsed_date("date", "%Y-%m-%d").cast(pl.Int64) * 86_400_000
    select = [
        event_ids(path.stem),
        pl.lit(event_type).alias("type"),
        pl.col("session").alias("session_id"),
        pl.col("item").alias("item_id"),
        pl.when(pl.col("user") == "NA").then(None).otherwise(pl.col("user")).alias("user_id"),
        seconds(day_ms + pl.col("timeframe").cast(pl.Int64), 1000).alias("timestamp"),
    ]
    events = read_table(
        path, rows, separator=";", fields=fields, n_fields=len(header), checks=checks, select=select
    )
    return events, rows.report()


def _items(path: Path, on_error: OnError) -> tuple[pl.DataFrame, ImportReport]:
    rows = RowFilter(path, on_error)
    header = read_header(path, rows, ";", None)
    fields = locate_columns(rows, header, {"item": "itemId", "category": "categoryId"})
    checks = [non_empty("item", "itemId"), non_empty("category", "categoryId")]
    select = [pl.col("item").alias("item_id"), pl.col("category").alias("category_path")]
    items = read_table(
        path, rows, separator=";", fields=fields, n_fields=len(header), checks=checks, select=select
    )
    return items.unique("item_id", keep="first", maintain_order=True), rows.report()


def import_diginetica(
    path: str | Path,
    *,
    purchases: str | Path | None = None,
    categories: str | Path | None = None,
    on_error: OnError = "raise",
) -> ImportResult:
    """Import the views file, plus purchases and categories when given.

    `path` is the views file, or a folder holding the files under their original names (a
    prefix such as `sample_` is allowed); files found there are read unless given explicitly.
    """
    path = Path(path)
    views = path
    if path.is_dir():
        found = _find(path, VIEWS)
        if found is None:
            raise FileNotFoundError(f"no file named like {VIEWS!r} in {path}")
        views = found
        purchases = purchases if purchases is not None else _find(path, PURCHASES)
        categories = categories if categories is not None else _find(path, CATEGORIES)
    frames, reports = [], []
    for source, columns, event_type in [
        (views, _VIEW_COLUMNS, EventType.VIEW),
        (purchases, _PURCHASE_COLUMNS, EventType.PURCHASE),
    ]:
        if source is not None:
            events, report = _events(Path(source), columns, event_type, on_error)
            frames.append(events)
            reports.append(report)
    items = None
    if categories is not None:
        items, report = _items(Path(categories), on_error)
        items = conform_items(items)
        reports.append(report)
    report = reports[0] if len(reports) == 1 else ImportReport.combine(path, reports)
    return ImportResult(conform_events(pl.concat(frames)), items, report)
