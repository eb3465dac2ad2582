"""One source of truth for behaviour events and catalog items.

Two views of the same schema live here:

* pydantic models (`Event`, `Item`) validate one record at an edge (HTTP, a CLI argument);
* Polars schemas (`EVENT_SCHEMA`, `ITEM_SCHEMA`) describe the columnar tables that importers
  produce and that training reads.

Ids are strings everywhere: shops use SKUs, UUIDs and numbers, and a number read as an integer
silently loses leading zeros.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any, Self

import polars as pl
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError


class EventType(StrEnum):
    VIEW = "view"
    CLICK = "click"
    CART = "cart"
    REMOVE_FROM_CART = "remove-from-cart"
    PURCHASE = "purchase"
    SEARCH = "search"
    KEYWORD_CLICK = "keyword-click"
    FAVORITE = "favorite"
    DWELL = "dwell"


EVENT_TYPES: frozenset[str] = frozenset(t.value for t in EventType)

# Event types that carry no item of their own: a search, and a click on a recommended
# keyword, are about a query.
ITEMLESS_EVENT_TYPES: frozenset[str] = frozenset(
    {EventType.SEARCH.value, EventType.KEYWORD_CLICK.value}
)

MAX_ID_LENGTH = 256
MAX_QUERY_LENGTH = 1024
MAX_CONTEXT_KEYS = 32
MAX_CONTEXT_KEY_LENGTH = 64
MAX_CATEGORY_DEPTH = 16

# Free context values: short strings, numbers or flags (an A/B arm, a page type, a referrer...).
ContextKey = Annotated[str, Field(min_length=1, max_length=MAX_CONTEXT_KEY_LENGTH)]
ContextValue = Annotated[str, Field(max_length=MAX_ID_LENGTH)] | bool | int | float
# An item's free attribute: a short string, number or flag, or a list of strings or numbers
# (a shirt in two colours); null means "no value". Nested objects are refused: no model or
# filter reads them. Checked by one validator, so a bad value gets one error naming its key
# (a union type would answer with one error per member).
_SCALAR_ATTRIBUTE_SCHEMA: list[dict[str, Any]] = [
    {"type": "string", "maxLength": MAX_ID_LENGTH},
    {"type": "number"},
    {"type": "boolean"},
]


def is_attribute_value(value: object) -> bool:
    """A free attribute's value: a string, number, boolean, null, or a list of strings or
    numbers; nested objects are not."""
    if isinstance(value, str):
        return len(value) <= MAX_ID_LENGTH
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, list):
        return len(value) <= MAX_CONTEXT_KEYS and all(
            (isinstance(v, (int, float)) and not isinstance(v, bool))
            or (isinstance(v, str) and len(v) <= MAX_ID_LENGTH)
            for v in value
        )
    return False


def attribute_type_message(value: object) -> str:
    if isinstance(value, str):
        return f"longer than {MAX_ID_LENGTH} characters"
    if isinstance(value, list):
        return (
            f"a list attribute holds at most {MAX_CONTEXT_KEYS} strings or numbers, nothing nested"
        )
    kind = "an object" if isinstance(value, dict) else f"a {type(value).__name__}"
    return f"{kind} is not an attribute value: use a string, number, boolean or a list of them"


def _attribute_value(value: Any) -> Any:
    if not is_attribute_value(value):
        raise PydanticCustomError("attribute_type", attribute_type_message(value))
    return value


AttributeValue = Annotated[
    Any,
    AfterValidator(_attribute_value),
    WithJsonSchema(
        {
            "anyOf": [
                *_SCALAR_ATTRIBUTE_SCHEMA,
                {
                    "type": "array",
                    "items": {"anyOf": _SCALAR_ATTRIBUTE_SCHEMA[:2]},
                    "maxItems": MAX_CONTEXT_KEYS,
                },
                {"type": "null"},
            ]
        }
    ),
]


class Event(BaseModel):
    """One behaviour event, as a shop sends it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    type: EventType
    session_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    item_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_LENGTH)
    user_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_LENGTH)
    timestamp: float = Field(
        ge=0,
        strict=True,
        allow_inf_nan=False,
        description="seconds since the Unix epoch (or a running order number)",
    )
    query: str | None = Field(default=None, max_length=MAX_QUERY_LENGTH)
    value: float | None = Field(default=None, strict=True, allow_inf_nan=False)
    placement: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    device: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    recommendation_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="the recommendation this event followed, for attribution",
    )
    context: dict[ContextKey, ContextValue] | None = Field(
        default=None, max_length=MAX_CONTEXT_KEYS, description="free keys about the event"
    )

    @model_validator(mode="after")
    def _item_when_needed(self) -> Self:
        if self.item_id is None and self.type.value not in ITEMLESS_EVENT_TYPES:
            # raised as a ValidationError so that the error names the field `item_id`
            message = f"item_id is required for {self.type.value!r} events"
            error = PydanticCustomError("item_required", message)
            details = InitErrorDetails(type=error, loc=("item_id",), input=None)
            raise ValidationError.from_exception_data("Event", [details])
        if self.type == EventType.KEYWORD_CLICK and not (self.query and self.query.strip()):
            message = "query is required for 'keyword-click' events: the keyword clicked"
            error = PydanticCustomError("query_required", message)
            details = InitErrorDetails(type=error, loc=("query",), input=self.query)
            raise ValidationError.from_exception_data("Event", [details])
        return self


class Item(BaseModel):
    """One catalog item."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    item_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    title: str = Field(default="", max_length=MAX_QUERY_LENGTH)
    category_path: tuple[Annotated[str, Field(max_length=MAX_ID_LENGTH)], ...] = Field(
        default=(), max_length=MAX_CATEGORY_DEPTH
    )
    brand: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    price: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    discount: float | None = Field(default=None, ge=0, le=1, description="fraction off, 0..1")
    attributes: dict[ContextKey, AttributeValue] = Field(
        default_factory=dict, max_length=MAX_CONTEXT_KEYS
    )
    in_stock: bool = True


# The columnar training table: one row per event, in this column order.
EVENT_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.String(),
    "type": pl.String(),
    "session_id": pl.String(),
    "item_id": pl.String(),  # null only for item-less events (search)
    "user_id": pl.String(),  # null for anonymous visitors
    "timestamp": pl.Float64(),  # seconds since epoch, or a running order number
    "query": pl.String(),
    "value": pl.Float64(),  # price paid, dwell seconds, rating...
    "placement": pl.String(),
    "device": pl.String(),
}

# What the event log keeps beyond the training table: attribution and free context (JSON text).
LOG_EVENT_SCHEMA: dict[str, pl.DataType] = {
    **EVENT_SCHEMA,
    "recommendation_id": pl.String(),
    "context": pl.String(),
}

# The catalog table. `category_path` is the path joined with CATEGORY_SEPARATOR;
# `attributes` is a JSON object as text, so any shop's free attributes fit one column.
CATEGORY_SEPARATOR = " > "
ITEM_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.String(),
    "title": pl.String(),
    "category_path": pl.String(),
    "brand": pl.String(),
    "price": pl.Float64(),
    "discount": pl.Float64(),
    "attributes": pl.String(),
    "in_stock": pl.Boolean(),
}

REQUIRED_EVENT_COLUMNS = ("event_id", "type", "session_id", "timestamp")


def empty_events() -> pl.DataFrame:
    return pl.DataFrame(schema=EVENT_SCHEMA)


def conform_events(frame: pl.DataFrame) -> pl.DataFrame:
    """Return `frame` with exactly the event columns, in order, with their types.

    Missing optional columns are added as nulls; a missing required column, a column of the
    wrong type that cannot be cast losslessly, or an unknown event type raises ValueError.
    """
    missing = [c for c in REQUIRED_EVENT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"event table lacks required column(s) {missing}")
    columns = []
    for name, dtype in EVENT_SCHEMA.items():
        if name in frame.columns:
            try:
                columns.append(frame[name].cast(dtype, strict=True))
            except Exception as exc:
                raise ValueError(f"event column {name!r} cannot be read as {dtype}: {exc}") from exc
        else:
            columns.append(pl.Series(name, [None] * frame.height, dtype=dtype))
    table = pl.DataFrame(columns)
    unknown = set(table["type"].drop_nulls().unique().to_list()) - EVENT_TYPES
    if unknown:
        raise ValueError(
            f"unknown event type(s) {sorted(unknown)[:5]}; allowed: {sorted(EVENT_TYPES)}"
        )
    for name in REQUIRED_EVENT_COLUMNS:
        if table[name].null_count():
            raise ValueError(f"event column {name!r} has {table[name].null_count()} null value(s)")
    needs_item = ~table["type"].is_in(list(ITEMLESS_EVENT_TYPES))
    n_itemless = table.filter(needs_item & table["item_id"].is_null()).height
    if n_itemless:
        raise ValueError(f"{n_itemless} event(s) of an item type have no item_id")
    return table


def item_of_row(row: dict[str, Any]) -> Item:
    """One row of an ITEM_SCHEMA table (`category_path` joined, `attributes` JSON text)."""
    path = str(row.get("category_path") or "")
    attributes = row.get("attributes")
    in_stock = row.get("in_stock")
    return Item(
        item_id=str(row["item_id"]),
        title=str(row.get("title") or ""),
        category_path=tuple(path.split(CATEGORY_SEPARATOR)) if path else (),
        brand=row.get("brand"),
        price=row.get("price"),
        discount=row.get("discount"),
        attributes=json.loads(str(attributes)) if attributes else {},
        in_stock=bool(in_stock) if in_stock is not None else True,
    )


def items_of_table(frame: pl.DataFrame) -> dict[str, Item]:
    """An ITEM_SCHEMA table as items by id."""
    return {str(row["item_id"]): item_of_row(row) for row in frame.iter_rows(named=True)}


def table_of_items(items: Iterable[Item]) -> pl.DataFrame:
    """Items as an ITEM_SCHEMA table (the inverse of `items_of_table`)."""
    rows = [
        {
            "item_id": item.item_id,
            "title": item.title,
            "category_path": CATEGORY_SEPARATOR.join(item.category_path) or None,
            "brand": item.brand,
            "price": item.price,
            "discount": item.discount,
            "attributes": json.dumps(item.attributes) if item.attributes else None,
            "in_stock": item.in_stock,
        }
        for item in items
    ]
    return pl.DataFrame(rows, schema=ITEM_SCHEMA)


def conform_items(frame: pl.DataFrame) -> pl.DataFrame:
    """Return `frame` with exactly the item columns, in order, with their types."""
    if "item_id" not in frame.columns:
        raise ValueError("item table lacks the required column 'item_id'")
    columns = []
    for name, dtype in ITEM_SCHEMA.items():
        if name in frame.columns:
            try:
                columns.append(frame[name].cast(dtype, strict=True))
            except Exception as exc:
                raise ValueError(f"item column {name!r} cannot be read as {dtype}: {exc}") from exc
        else:
            default = True if name == "in_stock" else None
            columns.append(pl.Series(name, [default] * frame.height, dtype=dtype))
    table = pl.DataFrame(columns)
    if table["item_id"].null_count():
        raise ValueError("item column 'item_id' has null values")
    return table
