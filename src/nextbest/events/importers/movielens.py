"""MovieLens (and other RecBole datasets) in RecBole's atomic files, tab-separated.

The header types each column, `name:type` with type token, token_seq, float or float_seq:

* `.inter`: `user_id:token item_id:token rating:float timestamp:float` -> "view" events whose
  `value` is the rating. There are no sessions: `session_id` is the user id, and data
  preparation splits each user's history into sessions by an inactivity gap.
* `.item`: `item_id:token movie_title:token_seq release_year:token class:token_seq` (ml-1m
  calls the genres `genre`) -> items; the first genre is the category path, and `attributes`
  holds `{"year": ..., "genres": [...]}`. The year is kept as the token it is typed as, not
  parsed: RecBole's ml-100k has `unkonwn` and, from a title it split wrongly, `V`.
* `.user`: `user_id:token age:token ...` -> a small frame of user attributes, as strings
  (float columns as numbers).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from nextbest.events.importers._rows import RowFilter, blank, event_ids, non_empty, number
from nextbest.events.importers._text import read_header, read_table
from nextbest.events.importers.report import ImportReport, ImportResult, OnError
from nextbest.events.schema import EventType, conform_events, conform_items


def _typed_header(path: Path, rows: RowFilter) -> dict[str, tuple[int, str]]:
    """Column name -> (position, RecBole type), from a `name:type` header."""
    columns: dict[str, tuple[int, str]] = {}
    for i, field in enumerate(read_header(path, rows, "\t", None)):
        name, _, kind = field.rpartition(":")
        if not name or kind not in ("token", "token_seq", "float", "float_seq"):
            raise rows.error(1, f"header field {field!r} is not 'name:type' (token, float, ...)")
        if name in columns:
            raise rows.error(1, f"header names column {name!r} more than once")
        columns[name] = (i, kind)
    return columns


def _need(rows: RowFilter, columns: dict[str, tuple[int, str]], *names: str) -> None:
    missing = [name for name in names if name not in columns]
    if missing:
        raise rows.error(1, f"header lacks column(s) {missing}; found {list(columns)}")


def _interactions(path: Path, on_error: OnError) -> tuple[pl.DataFrame, ImportReport]:
    rows = RowFilter(path, on_error)
    columns = _typed_header(path, rows)
    _need(rows, columns, "user_id", "item_id", "timestamp")
    fields: dict[str, int] = {
        name: columns[name][0]
        for name in ("user_id", "item_id", "timestamp", "rating")
        if name in columns
    }
    checks = [non_empty("user_id", "user_id"), non_empty("item_id", "item_id")]
    checks.append(number("timestamp", "timestamp"))
    value = pl.lit(None, dtype=pl.Float64)
    if "rating" in fields:
        checks.append(number("rating", "rating"))
        value = pl.col("rating").cast(pl.Float64)
    select = [
        event_ids(path.stem),
        pl.lit(EventType.VIEW.value).alias("type"),
        pl.col("user_id").alias("session_id"),
        pl.col("item_id"),
        pl.col("user_id"),
        pl.col("timestamp").cast(pl.Float64),
        value.alias("value"),
    ]
    events = read_table(
        path,
        rows,
        separator="\t",
        fields=fields,
        n_fields=len(columns),
        checks=checks,
        select=select,
    )
    return conform_events(events), rows.report()


def _first_present(columns: dict[str, tuple[int, str]], *names: str) -> str | None:
    return next((name for name in names if name in columns), None)


def _text(fields: dict[str, int], name: str) -> pl.Expr:
    """An optional text column: null where empty or absent from the file."""
    if name not in fields:
        return pl.lit(None, dtype=pl.String)
    return pl.when(blank(name)).then(None).otherwise(pl.col(name))


def _items(path: Path, on_error: OnError) -> tuple[pl.DataFrame, ImportReport]:
    rows = RowFilter(path, on_error)
    columns = _typed_header(path, rows)
    _need(rows, columns, "item_id")
    fields = {"item_id": columns["item_id"][0]}
    for ours, theirs in [
        ("title", _first_present(columns, "movie_title", "title")),
        ("year", _first_present(columns, "release_year", "year")),
        ("genres", _first_present(columns, "class", "genre", "genres")),
    ]:
        if theirs is not None:
            fields[ours] = columns[theirs][0]
    checks = [non_empty("item_id", "item_id")]
    genres = _text(fields, "genres").str.split(" ")
    genres = genres.list.eval(pl.element().filter(pl.element() != ""))
    select = [
        pl.col("item_id"),
        _text(fields, "title").alias("title"),
        genres.list.first().alias("category_path"),
        pl.struct(_text(fields, "year").alias("year"), genres.fill_null([]).alias("genres"))
        .struct.json_encode()
        .alias("attributes"),
    ]
    items = read_table(
        path,
        rows,
        separator="\t",
        fields=fields,
        n_fields=len(columns),
        checks=checks,
        select=select,
    )
    return conform_items(items), rows.report()


def _users(path: Path, on_error: OnError) -> tuple[pl.DataFrame, ImportReport]:
    rows = RowFilter(path, on_error)
    columns = _typed_header(path, rows)
    _need(rows, columns, "user_id")
    fields = {name: i for name, (i, _) in columns.items()}
    floats = [name for name, (_, kind) in columns.items() if kind == "float"]
    checks = [non_empty("user_id", "user_id")]
    checks += [number(name, name, optional=True) for name in floats]
    select = [
        pl.when(blank(name))
        .then(None)
        .otherwise(pl.col(name))
        .cast(pl.Float64 if name in floats else pl.String)
        .alias(name)
        for name in columns
    ]
    users = read_table(
        path,
        rows,
        separator="\t",
        fields=fields,
        n_fields=len(columns),
        checks=checks,
        select=select,
    )
    return users, rows.report()


def _find_inter(path: Path) -> Path:
    if not path.is_dir():
        return path
    found = sorted(path.glob("*.inter"))
    if len(found) != 1:
        raise FileNotFoundError(f"expected one .inter file in {path}, found {len(found)}")
    return found[0]


def import_movielens(path: str | Path, *, on_error: OnError = "raise") -> ImportResult:
    """Import a `.inter` file (or the folder holding one) and the `.item` / `.user` files
    beside it with the same name, when they exist."""
    inter = _find_inter(Path(path))
    events, report = _interactions(inter, on_error)
    reports = [report]
    items = users = None
    if inter.with_suffix(".item").is_file():
        items, report = _items(inter.with_suffix(".item"), on_error)
        reports.append(report)
    if inter.with_suffix(".user").is_file():
        users, report = _users(inter.with_suffix(".user"), on_error)
        reports.append(report)
    report = reports[0] if len(reports) == 1 else ImportReport.combine(Path(path), reports)
    return ImportResult(events, items, report, users)
