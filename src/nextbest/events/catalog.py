"""The catalog the server knows: items upserted by the shop (`PUT /v1/items`), kept in SQL.

The catalog lives in the same database as the event log. The server keeps a cache of the ids
and stock flags (`changed_since` feeds it), and looks single items up when the cache misses.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence

from sqlalchemy import Engine, func, select
from sqlalchemy.schema import CreateSchema

from nextbest.events.log.database import upsert_statement, write_lock
from nextbest.events.log.tables import log_tables
from nextbest.events.schema import CATEGORY_SEPARATOR, Item

SQL_CHUNK = 500


class Catalog(ABC):
    @abstractmethod
    def upsert(self, items: Sequence[Item]) -> int:
        """Insert or replace the items (by `item_id`); returns how many were written."""

    @abstractmethod
    def get(self, item_ids: Sequence[str]) -> dict[str, Item]:
        """The stored items among `item_ids`."""

    @abstractmethod
    def changed_since(self, when: float) -> list[tuple[str, bool, float]]:
        """(item_id, in_stock, updated_at) of the items written at or after `when`."""

    @abstractmethod
    def changed_items_since(self, when: float) -> list[tuple[Item, float]]:
        """(item, updated_at) of the items written at or after `when`, oldest first."""

    @abstractmethod
    def items(self, limit: int) -> list[Item]:
        """Up to `limit` items, in id order."""

    @abstractmethod
    def count(self) -> int:
        """The number of items."""


class SqlCatalog(Catalog):
    def __init__(self, engine: Engine, schema: str | None = None) -> None:
        if schema is not None and engine.dialect.name != "postgresql":
            raise ValueError(f"a database schema ({schema!r}) needs PostgreSQL; SQLite has none")
        self.engine = engine
        tables = log_tables(schema)
        self.metadata, self.table = tables.metadata, tables.items
        with engine.begin() as connection:
            if schema is not None:
                connection.execute(CreateSchema(schema, if_not_exists=True))
            self.metadata.create_all(connection)

    def upsert(self, items: Sequence[Item]) -> int:
        latest = {item.item_id: item for item in items}  # the last of repeated ids wins
        now = time.time()
        rows = [_row(item, now) for item in latest.values()]
        if not rows:
            return 0
        insert = upsert_statement(self.engine, self.table)
        replace = {name: insert.excluded[name] for name in rows[0] if name != "item_id"}
        statement = insert.on_conflict_do_update(index_elements=["item_id"], set_=replace)
        with write_lock(self.engine), self.engine.begin() as connection:
            for start in range(0, len(rows), SQL_CHUNK):
                connection.execute(statement, rows[start : start + SQL_CHUNK])
        return len(rows)

    def get(self, item_ids: Sequence[str]) -> dict[str, Item]:
        found: dict[str, Item] = {}
        table = self.table
        with self.engine.connect() as connection:
            for start in range(0, len(item_ids), SQL_CHUNK):
                chunk = list(item_ids[start : start + SQL_CHUNK])
                for row in connection.execute(select(table).where(table.c.item_id.in_(chunk))):
                    found[row.item_id] = _item(row._asdict())
        return found

    def changed_since(self, when: float) -> list[tuple[str, bool, float]]:
        table = self.table
        query = (
            select(table.c.item_id, table.c.in_stock, table.c.updated_at)
            .where(table.c.updated_at >= when)
            .order_by(table.c.updated_at)
        )
        with self.engine.connect() as connection:
            return [(row[0], bool(row[1]), float(row[2])) for row in connection.execute(query)]

    def changed_items_since(self, when: float) -> list[tuple[Item, float]]:
        table = self.table
        query = select(table).where(table.c.updated_at >= when).order_by(table.c.updated_at)
        with self.engine.connect() as connection:
            return [
                (_item(row._asdict()), float(row.updated_at)) for row in connection.execute(query)
            ]

    def items(self, limit: int) -> list[Item]:
        query = select(self.table).order_by(self.table.c.item_id).limit(limit)
        with self.engine.connect() as connection:
            return [_item(row._asdict()) for row in connection.execute(query)]

    def count(self) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.execute(select(func.count()).select_from(self.table)).scalar_one()
            )


def _row(item: Item, now: float) -> dict[str, object]:
    return {
        "item_id": item.item_id,
        "title": item.title,
        "category_path": CATEGORY_SEPARATOR.join(item.category_path),
        "brand": item.brand,
        "price": item.price,
        "discount": item.discount,
        "attributes": json.dumps(item.attributes, separators=(",", ":")),
        "in_stock": item.in_stock,
        "updated_at": now,
    }


def _item(row: dict[str, object]) -> Item:
    path = str(row["category_path"])
    return Item(
        item_id=str(row["item_id"]),
        title=str(row["title"]),
        category_path=tuple(path.split(CATEGORY_SEPARATOR)) if path else (),
        brand=row["brand"],  # type: ignore[arg-type]
        price=row["price"],  # type: ignore[arg-type]
        discount=row["discount"],  # type: ignore[arg-type]
        attributes=json.loads(str(row["attributes"])),
        in_stock=bool(row["in_stock"]),
    )
