"""OTTO's JSON lines: one session per line, `{"session": 1, "events": [{"aid", "ts", "type"}]}`.

`aid` is the item, `ts` milliseconds since the epoch, `type` one of clicks / carts / orders
(-> click / cart / purchase). A line is one row: if any of its events is malformed the whole
session is reported and, with "skip", dropped, since a session with a hole in it would teach
models transitions that never happened. OTTO sessions are anonymous (no user id).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from nextbest.events.importers._rows import LINE, TEXT, RowFilter, seconds
from nextbest.events.importers._text import iter_lines
from nextbest.events.importers.report import ImportResult, OnError
from nextbest.events.schema import EventType, conform_events, empty_events

EVENT_TYPES = {
    "clicks": EventType.CLICK.value,
    "carts": EventType.CART.value,
    "orders": EventType.PURCHASE.value,
}
# Numbers are decoded as their JSON text, so an id is never routed through a float.
_EVENT = pl.Struct({"aid": pl.String, "ts": pl.String, "type": pl.String})
_SESSION = pl.Struct({"session": pl.String, "events": pl.List(_EVENT)})
_WHOLE = r"^[0-9]+$"


def _undecodable(lines: pl.DataFrame) -> list[int]:
    """Line numbers that do not decode to a session, found by bisection (few calls when
    errors are rare, and the common case of a clean chunk costs one decode)."""
    try:
        lines[TEXT].str.json_decode(_SESSION)
    except pl.exceptions.PolarsError:
        if lines.height == 1:
            return [int(lines[LINE][0])]
        half = lines.height // 2
        return _undecodable(lines[:half]) + _undecodable(lines[half:])
    return []


def _line_reason() -> pl.Expr:
    session, events = pl.col("session"), pl.col("events")
    return (
        pl.when(pl.col("_broken"))
        .then(pl.lit("not a JSON object with 'session' and a list of 'events'"))
        .when(session.is_null())
        .then(pl.lit("missing 'session'"))
        .when(~session.str.contains(_WHOLE))
        .then(pl.concat_str([pl.lit("'session' is not a whole number: "), session]))
        .when(events.is_null() | (events.list.len() == 0))
        .then(pl.lit("no 'events'"))
    )


def _event_reason() -> pl.Expr:
    aid, ts, kind = pl.col("aid"), pl.col("ts"), pl.col("type")
    where = pl.concat_str([pl.lit("event "), pl.col("k").cast(pl.String), pl.lit(": ")])
    reason = (
        pl.when(aid.is_null() | ~aid.str.contains(_WHOLE))
        .then(pl.concat_str([pl.lit("'aid' is not a whole number: "), aid.fill_null("null")]))
        .when(ts.is_null() | ~ts.str.contains(_WHOLE))
        .then(pl.concat_str([pl.lit("'ts' is not a whole number: "), ts.fill_null("null")]))
        .when(~kind.is_in(list(EVENT_TYPES)).fill_null(True))
        .then(pl.concat_str([pl.lit("unknown 'type' "), kind.fill_null("null")]))
    )
    return pl.concat_str([where, reason])


def _one_row_per_event(table: pl.DataFrame) -> pl.DataFrame:
    """LINE, session, k (the position in the session) and the event's fields."""
    position = pl.col("events").list.eval(pl.int_range(pl.len())).alias("k")
    return (
        table.select(LINE, "session", position, "events")
        .explode("k", "events")
        .filter(pl.col("k").is_not_null())  # sessions without events
        .unnest("events")
    )


def _sessions(lines: pl.DataFrame) -> pl.DataFrame:
    """Decode a chunk: LINE, TEXT, session, events, and the first reason the line is bad."""
    broken = _undecodable(lines) if lines.height else []
    good = lines.filter(~pl.col(LINE).is_in(broken))
    decoded = good.with_columns(good[TEXT].str.json_decode(_SESSION).alias("_json")).unnest("_json")
    bad = lines.filter(pl.col(LINE).is_in(broken))
    table = pl.concat([decoded, bad], how="diagonal").sort(LINE)
    table = table.with_columns(pl.col(LINE).is_in(broken).alias("_broken"))
    events = (
        _one_row_per_event(table)
        .select(LINE, _event_reason().alias("_event_reason"))
        .group_by(LINE)
        .agg(pl.col("_event_reason").drop_nulls().first())
    )
    return table.join(events, on=LINE, how="left").sort(LINE)


def import_otto(path: str | Path, *, on_error: OnError = "raise") -> ImportResult:
    """Import an OTTO `.jsonl` file; event ids are `<stem>:<line>:<position in session>`."""
    path = Path(path)
    rows = RowFilter(path, on_error)
    parts = []
    for lines in iter_lines(path, rows):
        table = rows.keep(_sessions(lines), [_line_reason(), pl.col("_event_reason")])
        parts.append(
            _one_row_per_event(table).select(
                pl.concat_str(
                    [pl.lit(f"{path.stem}:"), pl.col(LINE), pl.lit(":"), pl.col("k")]
                ).alias("event_id"),
                pl.col("type").replace_strict(EVENT_TYPES, return_dtype=pl.String),
                pl.col("session").alias("session_id"),
                pl.col("aid").alias("item_id"),
                seconds(pl.col("ts"), 1000).alias("timestamp"),
            )
        )
    events = conform_events(pl.concat(parts)) if parts else empty_events()
    return ImportResult(events, None, rows.report())
