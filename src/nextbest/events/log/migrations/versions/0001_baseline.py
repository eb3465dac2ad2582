"""The event log as nextbest made it before migrations: events, items, identities, served.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = 256  # MAX_ID_LENGTH of this release


def upgrade() -> None:
    schema = context.config.attributes.get("schema")
    seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "events",
        sa.Column("seq", seq, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(ID), nullable=False, unique=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("session_id", sa.String(ID), nullable=False),
        sa.Column("item_id", sa.String(ID)),
        sa.Column("user_id", sa.String(ID)),
        sa.Column("timestamp", sa.Float, nullable=False),
        sa.Column("query", sa.Text),
        sa.Column("value", sa.Float),
        sa.Column("placement", sa.String(ID)),
        sa.Column("device", sa.String(ID)),
        sa.Column("recommendation_id", sa.String(ID)),
        sa.Column("context", sa.Text),
        sa.Column("received_at", sa.Float, nullable=False),
        schema=schema,
    )
    op.create_index("ix_events_session", "events", ["session_id", "seq"], schema=schema)
    carried = sa.text("recommendation_id IS NOT NULL")
    op.create_index(
        "ix_events_recommendation", "events", ["recommendation_id"], schema=schema,
        sqlite_where=carried, postgresql_where=carried,
    )  # fmt: skip
    op.create_table(
        "items",
        sa.Column("item_id", sa.String(ID), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("category_path", sa.Text, nullable=False),
        sa.Column("brand", sa.String(ID)),
        sa.Column("price", sa.Float),
        sa.Column("discount", sa.Float),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.Column("in_stock", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        schema=schema,
    )
    op.create_index("ix_items_updated_at", "items", ["updated_at"], schema=schema)
    op.create_table(
        "identities",
        sa.Column("session_id", sa.String(ID), primary_key=True),
        sa.Column("user_id", sa.String(ID), nullable=False),
        sa.Column("linked_at", sa.Float, nullable=False),
        schema=schema,
    )
    op.create_index("ix_identities_user", "identities", ["user_id", "linked_at"], schema=schema)
    op.create_table(
        "served",
        sa.Column("recommendation_id", sa.String(ID), primary_key=True),
        sa.Column("served_at", sa.Float, nullable=False),
        sa.Column("session_id", sa.String(ID)),
        sa.Column("user_id", sa.String(ID)),
        sa.Column("placement", sa.String(ID)),
        sa.Column("item_id", sa.String(ID)),
        sa.Column("model_version", sa.String(ID)),
        sa.Column("items", sa.Text, nullable=False),
        sa.Column("experiment", sa.String(ID)),
        sa.Column("variant", sa.String(ID)),
        sa.Column("unit", sa.String(ID + 8)),
        schema=schema,
    )
    op.create_index("ix_served_served_at", "served", ["served_at"], schema=schema)
    op.create_index("ix_served_experiment", "served", ["experiment", "served_at"], schema=schema)


def downgrade() -> None:
    raise NotImplementedError("nextbest upgrades only: restore a backup to go back")
