"""The trigger channels' tables: the log cursor, pending moments, claims and the outbox.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = context.config.attributes.get("schema")
    op.create_table(
        "trigger_cursor",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        schema=schema,
    )
    op.create_table(
        "trigger_pending",
        sa.Column("trigger", sa.String(128), primary_key=True),
        sa.Column("user_id", sa.String(256), primary_key=True),
        sa.Column("due_at", sa.Float, nullable=False),
        sa.Column("session_id", sa.String(256), nullable=False),
        sa.Column("item_id", sa.String(256)),
        sa.Column("event_time", sa.Float, nullable=False),
        schema=schema,
    )
    op.create_index("ix_trigger_pending_due_at", "trigger_pending", ["due_at"], schema=schema)
    op.create_table(
        "trigger_last",
        sa.Column("trigger", sa.String(128), primary_key=True),
        sa.Column("user_id", sa.String(256), primary_key=True),
        sa.Column("fired_at", sa.Float, nullable=False),
        schema=schema,
    )
    op.create_table(
        "trigger_outbox",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("trigger", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("delivered_at", sa.Float),
        sa.Column("failed", sa.Boolean, nullable=False),
        sa.Column("last_error", sa.Text),
        schema=schema,
    )
    op.create_index(
        "ix_trigger_outbox_next_attempt_at", "trigger_outbox", ["next_attempt_at"], schema=schema
    )


def downgrade() -> None:
    raise NotImplementedError("nextbest upgrades only: restore a backup to go back")
