"""The tables of the event log and the catalog (SQLAlchemy Core), one `MetaData` per schema.

`events.seq` is the log's order: an integer that only grows (SQLite's rowid, a PostgreSQL
identity). Readers that follow the log (live statistics, training export) page by `seq`.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from nextbest.events.schema import MAX_ID_LENGTH

# SQLite makes an INTEGER PRIMARY KEY the rowid; PostgreSQL wants a 64-bit identity.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


def log_tables(schema: str | None = None) -> tuple[MetaData, Table, Table]:
    """(metadata, events, items) for tables in `schema` (PostgreSQL only; None = default)."""
    metadata = MetaData(schema=schema)
    events = Table(
        "events",
        metadata,
        Column("seq", SeqType, primary_key=True, autoincrement=True),
        Column("event_id", String(MAX_ID_LENGTH), nullable=False, unique=True),
        Column("type", String(32), nullable=False),
        Column("session_id", String(MAX_ID_LENGTH), nullable=False),
        Column("item_id", String(MAX_ID_LENGTH)),
        Column("user_id", String(MAX_ID_LENGTH)),
        Column("timestamp", Float, nullable=False),
        Column("query", Text),
        Column("value", Float),
        Column("placement", String(MAX_ID_LENGTH)),
        Column("device", String(MAX_ID_LENGTH)),
        Column("recommendation_id", String(MAX_ID_LENGTH)),
        Column("context", Text),  # JSON object
        Column("received_at", Float, nullable=False),  # server clock, seconds since epoch
    )
    Index("ix_events_session", events.c.session_id, events.c.seq)
    purchase = (events.c.type == "purchase") & events.c.user_id.is_not(None)
    Index(
        "ix_events_user_purchases",
        events.c.user_id,
        events.c.seq,
        sqlite_where=purchase,
        postgresql_where=purchase,
    )
    items = Table(
        "items",
        metadata,
        Column("item_id", String(MAX_ID_LENGTH), primary_key=True),
        Column("title", Text, nullable=False),
        Column("category_path", Text, nullable=False),
        Column("brand", String(MAX_ID_LENGTH)),
        Column("price", Float),
        Column("discount", Float),
        Column("attributes", Text, nullable=False),  # JSON object
        Column("in_stock", Boolean, nullable=False),
        Column("updated_at", Float, nullable=False, index=True),
    )
    return metadata, events, items
