"""REES46 multi-category store events (the Kaggle "eCommerce behavior data" CSVs).

`event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session`,
one row per event, times like `2019-10-01 00:00:00 UTC`. The rows also describe the product,
so the import returns an items table: `category_code` (`electronics.smartphone`) becomes the
category path, with `brand`, the last price seen, and the numeric `category_id` kept in
`attributes`. A purchase's `value` is the price paid; other events carry no value.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from nextbest.events.importers._rows import RowFilter, blank, event_ids, non_empty, number, one_of
from nextbest.events.importers._text import locate_columns, read_header, read_table
from nextbest.events.importers.report import ImportResult, OnError
from nextbest.events.schema import CATEGORY_SEPARATOR, EventType, conform_events, conform_items

EVENT_TYPES = {
    "view": EventType.VIEW.value,
    "cart": EventType.CART.value,
    "remove_from_cart": EventType.REMOVE_FROM_CART.value,
    "purchase": EventType.PURCHASE.value,
}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"
_COLUMNS = {
    "time": "event_time",
    "type": "event_type",
    "item": "product_id",
    "category_id": "category_id",
    "category_code": "category_code",
    "brand": "brand",
    "price": "price",
    "user": "user_id",
    "session": "user_session",
}
_ITEM_COLUMNS = ["item_id", "category_path", "brand", "price", "attributes"]


def _time() -> pl.Expr:
    return pl.col("time").str.strptime(pl.Datetime("us"), TIME_FORMAT, strict=False)


def _checks() -> list[pl.Expr]:
    bad_time = pl.concat_str(
        [
            pl.lit("column 'event_time' is not a time like '2019-10-01 00:00:00 UTC': '"),
            pl.col("time"),
            pl.lit("'"),
        ]
    )
    negative = pl.col("price").cast(pl.Float64, strict=False) < 0
    return [
        pl.when(_time().is_null()).then(bad_time),
        one_of("type", "event_type", EVENT_TYPES),
        non_empty("item", "product_id"),
        number("price", "price", optional=True),
        pl.when(negative).then(pl.lit("column 'price' is negative")),
        non_empty("user", "user_id"),
        non_empty("session", "user_session"),
    ]


def _or_null(col: str) -> pl.Expr:
    return pl.when(blank(col)).then(None).otherwise(pl.col(col))


def import_rees46(path: str | Path, *, on_error: OnError = "raise") -> ImportResult:
    """Import one REES46 monthly CSV (or a sample of it) into events and items."""
    path = Path(path)
    rows = RowFilter(path, on_error)
    header = read_header(path, rows, ",", '"')
    fields = locate_columns(rows, header, _COLUMNS)
    event_type = pl.col("type").replace_strict(EVENT_TYPES, return_dtype=pl.String)
    price = pl.when(blank("price")).then(None).otherwise(pl.col("price")).cast(pl.Float64)
    category = _or_null("category_code").str.split(".").list.join(CATEGORY_SEPARATOR)
    select = [
        event_ids(path.stem),
        event_type.alias("type"),
        pl.col("session").alias("session_id"),
        pl.col("item").alias("item_id"),
        pl.col("user").alias("user_id"),
        _time().dt.epoch("s").cast(pl.Float64).alias("timestamp"),
        pl.when(event_type == EventType.PURCHASE.value).then(price).alias("value"),
        category.alias("category_path"),
        _or_null("brand").alias("brand"),
        price.alias("price"),
        pl.struct(_or_null("category_id").alias("category_id"))
        .struct.json_encode()
        .alias("attributes"),
    ]
    table = read_table(
        path,
        rows,
        separator=",",
        fields=fields,
        n_fields=len(header),
        checks=_checks(),
        select=select,
        quote_char='"',
    )
    # One row per product; fields that change over time (price) take their last value.
    items = table.group_by("item_id", maintain_order=True).agg(
        pl.col(c).drop_nulls().last() for c in _ITEM_COLUMNS[1:]
    )
    events = table.drop(_ITEM_COLUMNS[1:])
    return ImportResult(conform_events(events), conform_items(items), rows.report())
