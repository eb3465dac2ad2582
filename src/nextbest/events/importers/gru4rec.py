"""GRU4Rec's session TSV: `SessionId<TAB>ItemId<TAB>Time` with a header.

The format of the session-based recommendation literature (GRU4Rec, session-rec, the splits in
`shared/datasets`). We also read and write two optional columns, `UserId` (empty = anonymous)
and `EventType` (our event type strings; "view" when the column is absent), so a prepared
event table can be handed to other tools and read back unchanged. Other columns, such as the
`TargetTime` of some test splits, are ignored. Rows keep file order; ordering and session
splitting are the job of data preparation.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from nextbest.events.importers._rows import RowFilter, blank, event_ids, non_empty, number, one_of
from nextbest.events.importers._text import locate_columns, read_header, read_table
from nextbest.events.importers.report import ImportResult, OnError
from nextbest.events.schema import EVENT_TYPES, EventType, conform_events

_REQUIRED = {"session": "SessionId", "item": "ItemId", "time": "Time"}
_OPTIONAL = {"user": "UserId", "type": "EventType"}
_FORBIDDEN_IN_IDS = ("\t", "\n", "\r")


def import_gru4rec(
    path: str | Path, *, on_error: OnError = "raise", default_type: str = EventType.VIEW
) -> ImportResult:
    """Import a GRU4Rec TSV file; `default_type` is the type of every row without `EventType`."""
    path = Path(path)
    if default_type not in EVENT_TYPES:
        raise ValueError(f"default_type={default_type!r}; allowed: {sorted(EVENT_TYPES)}")
    rows = RowFilter(path, on_error)
    header = read_header(path, rows, "\t", None)
    fields = locate_columns(rows, header, _REQUIRED, _OPTIONAL)
    checks = [
        non_empty("session", "SessionId"),
        non_empty("item", "ItemId"),
        number("time", "Time"),
    ]
    event_type = pl.lit(str(default_type))
    if "type" in fields:
        checks.append(one_of("type", "EventType", EVENT_TYPES))
        event_type = pl.col("type")
    user = pl.when(blank("user")).then(None).otherwise(pl.col("user")) if "user" in fields else None
    select = [
        event_ids(path.stem),
        event_type.alias("type"),
        pl.col("session").alias("session_id"),
        pl.col("item").alias("item_id"),
        pl.lit(None, dtype=pl.String).alias("user_id") if user is None else user.alias("user_id"),
        pl.col("time").cast(pl.Float64).alias("timestamp"),
    ]
    events = read_table(
        path,
        rows,
        separator="\t",
        fields=fields,
        n_fields=len(header),
        checks=checks,
        select=select,
    )
    return ImportResult(conform_events(events), None, rows.report())


def write_gru4rec_tsv(events: pl.DataFrame, path: str | Path) -> None:
    """Write `SessionId, ItemId, Time, UserId, EventType`, readable by `import_gru4rec`.

    Event ids, queries, values and the other optional columns have no place in the format and
    are not written. Item-less events (searches) and ids containing tabs or line breaks cannot
    be written faithfully, so they raise ValueError instead of producing a broken file.
    """
    table = conform_events(events)
    if table["item_id"].null_count():
        raise ValueError(
            f"{table['item_id'].null_count()} event(s) have no item_id (searches); GRU4Rec TSV "
            "has no place for them: filter them out first"
        )
    for column in ("session_id", "item_id", "user_id"):
        values = table[column].drop_nulls()
        for char in _FORBIDDEN_IN_IDS:
            if values.str.contains(char, literal=True).any():
                raise ValueError(f"event column {column!r} has ids containing {char!r}")
    out = table.select(
        pl.col("session_id").alias("SessionId"),
        pl.col("item_id").alias("ItemId"),
        pl.col("timestamp").alias("Time"),  # shortest repr that reads back to the same float
        pl.col("user_id").alias("UserId"),
        pl.col("type").alias("EventType"),
    )
    out.write_csv(Path(path), separator="\t", quote_style="never", null_value="")
