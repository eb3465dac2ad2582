"""The tables of the event log and the catalog (SQLAlchemy Core), one `MetaData` per schema.

`events.seq` is the log's order: an integer that only grows (SQLite's rowid, a PostgreSQL
identity). Readers that follow the log (live statistics, training export) page by `seq`.

`identities` says which user a session belongs to: a row is written (first wins) when the
session's first event with a `user_id` is logged, or when the session logs in (`link`). Every
event of the session counts for that user, those before the login too, and exactly once: an
event row joins to at most one identity row.

`served` keeps each recommendation list the server answered, under its `recommendation_id`:
events that carry the id back (a click, a cart add, a purchase) are its outcomes; a list
answered under an experiment names its experiment and variant (attribution per variant). The partial
index on `events.recommendation_id` finds them without indexing the events that carry none.
"""

from __future__ import annotations

from typing import NamedTuple

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


class LogTables(NamedTuple):
    metadata: MetaData
    events: Table
    items: Table
    identities: Table
    served: Table


def log_tables(schema: str | None = None) -> LogTables:
    """The tables in `schema` (PostgreSQL only; None = default)."""
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
    carried = events.c.recommendation_id.is_not(None)
    Index(
        "ix_events_recommendation",
        events.c.recommendation_id,
        sqlite_where=carried,
        postgresql_where=carried,
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
    identities = Table(
        "identities",
        metadata,
        Column("session_id", String(MAX_ID_LENGTH), primary_key=True),
        Column("user_id", String(MAX_ID_LENGTH), nullable=False),
        Column("linked_at", Float, nullable=False),  # server clock, seconds since epoch
    )
    Index("ix_identities_user", identities.c.user_id, identities.c.linked_at)
    served = Table(
        "served",
        metadata,
        Column("recommendation_id", String(MAX_ID_LENGTH), primary_key=True),
        Column("served_at", Float, nullable=False, index=True),  # server clock, epoch seconds
        Column("session_id", String(MAX_ID_LENGTH)),
        Column("user_id", String(MAX_ID_LENGTH)),
        Column("placement", String(MAX_ID_LENGTH)),
        Column("item_id", String(MAX_ID_LENGTH)),  # the item on screen, if any
        Column("model_version", String(MAX_ID_LENGTH)),
        Column("items", Text, nullable=False),  # JSON [[item_id, source, score], ...] in order
        Column("experiment", String(MAX_ID_LENGTH)),  # the experiment that chose the variant
        Column("variant", String(MAX_ID_LENGTH)),
        Column("unit", String(MAX_ID_LENGTH + 8)),  # the assignment's "user:..."/"session:..."
    )
    Index("ix_served_experiment", served.c.experiment, served.c.served_at)
    return LogTables(metadata, events, items, identities, served)


def trigger_tables(schema: str | None = None) -> tuple[MetaData, Table, Table, Table, Table]:
    """The trigger channels' tables (`nextbest.triggers`), made by the log's migration 0002:
    where the runner read up to, what is pending per trigger and user, when each last fired,
    and the messages until delivered. Erasing a user deletes theirs."""
    metadata = MetaData(schema=schema)
    cursor = Table(
        "trigger_cursor", metadata,
        Column("name", String(64), primary_key=True), Column("seq", Integer, nullable=False),
    )  # fmt: skip
    pending = Table(
        "trigger_pending", metadata,
        Column("trigger", String(128), primary_key=True),
        Column("user_id", String(256), primary_key=True),
        Column("due_at", Float, nullable=False, index=True),
        Column("session_id", String(256), nullable=False),
        Column("item_id", String(256)),
        Column("event_time", Float, nullable=False),
    )  # fmt: skip
    last = Table(
        "trigger_last", metadata,
        Column("trigger", String(128), primary_key=True),
        Column("user_id", String(256), primary_key=True),
        Column("fired_at", Float, nullable=False),
    )  # fmt: skip
    outbox = Table(
        "trigger_outbox", metadata,
        Column("id", String(32), primary_key=True),
        Column("trigger", String(128), nullable=False),
        Column("user_id", String(256), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", Float, nullable=False),
        Column("attempts", Integer, nullable=False, default=0),
        Column("next_attempt_at", Float, nullable=False, index=True),
        Column("delivered_at", Float),
        Column("failed", Boolean, nullable=False, default=False),
        Column("last_error", Text),
    )  # fmt: skip
    return metadata, cursor, pending, last, outbox
