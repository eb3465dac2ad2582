"""Any CSV or Parquet file of events, given which of its columns holds what.

`columns` maps our event fields to the file's column names, e.g.
`{"session_id": "sess", "item_id": "product", "timestamp": "ts", "user_id": "customer"}`.
`item_id` and `timestamp` are required, and `session_id` or `user_id`: a file with users but
no sessions gets `session_id = user_id`, and data preparation splits each user's history into
sessions by an inactivity gap. The event type is a constant (`event_type`) or a mapped column,
whose values are our type names or are translated by `type_map`.

`time_format` is "s" or "ms" (epoch numbers), "iso" (ISO 8601 text; without an offset it is
UTC), or a strptime format such as "%d/%m/%Y %H:%M". Parquet integer columns become exact
string ids; a float id column is refused, because a float id may already have lost digits.

An empty cell is a missing value. `null_values` names more cell texts that mean "missing",
such as `NA` for an anonymous visitor's user id: such a user_id, value, query, placement or
device becomes null, and such a session id, item id (of an event that needs one) or time is a
malformed row, as an empty one is.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

import polars as pl

from nextbest.events.importers._rows import (
    LINE,
    NFIELDS,
    TEXT,
    RowFilter,
    blank,
    event_ids,
    non_empty,
    number,
    one_of,
    seconds,
)
from nextbest.events.importers._text import locate_columns, read_header, read_table
from nextbest.events.importers.report import ImportResult, OnError
from nextbest.events.schema import EVENT_SCHEMA, EVENT_TYPES, ITEMLESS_EVENT_TYPES, conform_events

PARQUET_SUFFIXES = (".parquet", ".pq")
_OPTIONAL_TEXT = ("query", "placement", "device")


def _check_options(
    columns: Mapping[str, str], time_format: str, event_type: str, type_map: Mapping[str, str]
) -> None:
    unknown = sorted(set(columns) - set(EVENT_SCHEMA))
    if unknown:
        raise ValueError(f"columns has unknown field(s) {unknown}; allowed: {list(EVENT_SCHEMA)}")
    for field in ("item_id", "timestamp"):
        if field not in columns:
            raise ValueError(f"columns must map {field!r} to a column of the file")
    if "session_id" not in columns and "user_id" not in columns:
        raise ValueError("columns must map 'session_id' or 'user_id' to a column of the file")
    if time_format not in ("s", "ms", "iso") and "%" not in time_format:
        raise ValueError(f"time_format={time_format!r}; use 's', 'ms', 'iso' or a strptime format")
    bad_types = sorted({event_type, *type_map.values()} - EVENT_TYPES)
    if bad_types:
        raise ValueError(f"event type(s) {bad_types} unknown; allowed: {sorted(EVENT_TYPES)}")


def _epoch_seconds(time_format: str) -> pl.Expr:
    """The `timestamp` column (text) as epoch seconds; null where it does not parse."""
    text = pl.col("timestamp")
    if time_format in ("s", "ms"):
        number = text.cast(pl.Float64, strict=False)
        number = pl.when(number.is_finite()).then(number)
        return seconds(number, 1000) if time_format == "ms" else number
    if time_format == "iso":
        moment = text.str.to_datetime(strict=False, time_zone="UTC", time_unit="us")
    else:
        moment = text.str.strptime(pl.Datetime("us"), time_format, strict=False)
    return seconds(moment.dt.epoch("us"), 1_000_000)


def _missing(name: str, null_values: Collection[str]) -> pl.Expr:
    """True where a field is empty or one of the texts that mean "missing"."""
    if not null_values:
        return blank(name)
    return blank(name) | pl.col(name).str.strip_chars().is_in(list(null_values))


def _plan(
    columns: Mapping[str, str],
    time_format: str,
    event_type: str,
    type_map: Mapping[str, str],
    stem: str,
    null_values: Collection[str] = (),
) -> tuple[list[pl.Expr], list[pl.Expr]]:
    """The checks and the output columns, over string columns named by our fields."""
    label = dict(columns)

    def or_null(name: str) -> pl.Expr:
        return pl.when(_missing(name, null_values)).then(None).otherwise(pl.col(name))

    def present(name: str) -> pl.Expr:
        return pl.when(_missing(name, null_values)).then(pl.lit(f"column {label[name]!r} is empty"))

    kind = pl.lit(event_type)
    checks = []
    if "type" in columns:
        allowed = type_map or {t: t for t in EVENT_TYPES}
        checks.append(one_of("type", label["type"], allowed))
        # default=None: the checks see unknown values too; they never reach the output
        kind = pl.col("type").replace_strict(dict(allowed), default=None, return_dtype=pl.String)
    session = "session_id" if "session_id" in columns else "user_id"
    checks.append(present(session))
    if "event_id" in columns:
        checks.append(non_empty("event_id", label["event_id"]))
    needs_item = ~kind.is_in(list(ITEMLESS_EVENT_TYPES))
    checks.append(pl.when(needs_item).then(present("item_id")))
    bad_time = pl.concat_str(
        [
            pl.lit(f"column {label['timestamp']!r} is not a time ({time_format}): '"),
            pl.col("timestamp"),
            pl.lit("'"),
        ]
    )
    checks.append(pl.when(_epoch_seconds(time_format).is_null()).then(bad_time))
    if "value" in columns:
        value_check = number("value", label["value"], optional=True)
        checks.append(pl.when(~_missing("value", null_values)).then(value_check))
    select = [
        pl.col("event_id") if "event_id" in columns else event_ids(stem),
        kind.alias("type"),
        pl.col(session).alias("session_id"),
        or_null("item_id").alias("item_id"),
        (or_null("user_id") if "user_id" in columns else pl.lit(None)).alias("user_id"),
        _epoch_seconds(time_format).alias("timestamp"),
    ]
    if "value" in columns:
        select.append(or_null("value").cast(pl.Float64).alias("value"))
    select += [or_null(name).alias(name) for name in _OPTIONAL_TEXT if name in columns]
    return checks, select


def _parquet_as_text(path: Path, columns: Mapping[str, str]) -> tuple[pl.DataFrame, bool]:
    """The mapped columns as text, plus whether a temporal timestamp became epoch seconds."""
    present = list(pl.read_parquet_schema(path))
    missing = sorted(set(columns.values()) - set(present))
    if missing:
        raise ValueError(f"{path.name} lacks column(s) {missing}; found {present}")
    source = pl.read_parquet(path, columns=[c for c in present if c in columns.values()])
    converted, epoch = [], False
    for ours, theirs in columns.items():
        column = source[theirs]
        if column.dtype.is_temporal() and ours == "timestamp":
            micros = column.cast(pl.Datetime("us")).dt.epoch("us").to_frame()
            column = micros.select(seconds(pl.first(), 1_000_000)).to_series()
            epoch = True
        elif column.dtype.is_float() and ours not in ("timestamp", "value"):
            raise ValueError(
                f"{path.name}: column {theirs!r} ({ours}) is {column.dtype}; ids must be text "
                "or integers, since a float id may already have lost digits"
            )
        elif not (column.dtype.is_numeric() or column.dtype in (pl.String, pl.Categorical)):
            raise ValueError(f"{path.name}: column {theirs!r} ({ours}) is {column.dtype}")
        converted.append(column.cast(pl.String).alias(ours))
    rows = pl.struct(source.columns)
    frame = source.select(rows.struct.json_encode().alias(TEXT)).with_columns(converted)
    frame = frame.with_row_index(LINE, offset=1).with_columns(pl.col(LINE).cast(pl.Int64))
    return frame.with_columns(pl.lit(len(columns), dtype=pl.Int64).alias(NFIELDS)), epoch


def import_generic(
    path: str | Path,
    *,
    columns: Mapping[str, str],
    time_format: str = "s",
    event_type: str = "view",
    type_map: Mapping[str, str] | None = None,
    separator: str = ",",
    quote_char: str | None = '"',
    null_values: Collection[str] = (),
    on_error: OnError = "raise",
) -> ImportResult:
    """Import a CSV (any single-character `separator`) or a Parquet file (by its suffix).

    `null_values`: cell texts that mean "missing" besides an empty cell, e.g. `("NA",)`.
    """
    path = Path(path)
    type_map = dict(type_map or {})
    if isinstance(null_values, str):  # "NA" would otherwise mean {"N", "A"}
        null_values = (null_values,)
    null_values = tuple(null_values)
    _check_options(columns, time_format, event_type, type_map)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        rows = RowFilter(path, on_error, unit="row")
        table, epoch = _parquet_as_text(path, columns)
        checks, select = _plan(
            columns, "s" if epoch else time_format, event_type, type_map, path.stem, null_values
        )
        rows.rows_read = table.height
        events = rows.keep(table, checks).select(select)
        return ImportResult(conform_events(events), None, rows.report())
    if len(separator) != 1:
        raise ValueError(f"separator={separator!r}; use a single character such as ',' or '\\t'")
    rows = RowFilter(path, on_error)
    header = read_header(path, rows, separator, quote_char)
    fields = locate_columns(rows, header, columns)
    checks, select = _plan(columns, time_format, event_type, type_map, path.stem, null_values)
    events = read_table(
        path,
        rows,
        separator=separator,
        fields=fields,
        n_fields=len(header),
        checks=checks,
        select=select,
        quote_char=quote_char,
    )
    return ImportResult(conform_events(events), None, rows.report())
