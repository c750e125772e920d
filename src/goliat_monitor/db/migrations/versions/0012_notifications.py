"""notifications: the dashboard's targets, the outbox and its deliveries

- notify_targets: apprise URLs an admin added, with the events each wants;
- notifications: the outbox, one row per event and episode (`dedup_key` unique), written in the
  transaction that caused the event or by a replica's detection loop;
- notification_deliveries: one row per notification and target, claimed under a lease, retried
  with backoff, kept with its last error.

Revision ID: 0012_notifications
Revises: 0011_hot_worker_updates
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_notifications"
down_revision = "0011_hot_worker_updates"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "notify_targets",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("masked_url", sa.Text(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=128), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_targets")),
    )
    op.create_table(
        "notifications",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("dedup_key", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("fanned_out", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_notifications_dedup_key")),
    )
    op.create_index(
        "ix_notifications_waiting",
        "notifications",
        ["id"],
        sqlite_where=sa.text("fanned_out = 0"),
        postgresql_where=sa.text("fanned_out = false"),
    )
    op.create_index("ix_notifications_subject", "notifications", ["subject", "kind", "id"])
    op.create_table(
        "notification_deliveries",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("notification_id", BigId, nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("target_label", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("lease_owner", sa.String(length=36), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name=op.f("fk_notification_deliveries_notification_id_notifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_deliveries")),
    )
    op.create_index(
        "uq_notification_deliveries_target",
        "notification_deliveries",
        ["notification_id", "target"],
        unique=True,
    )
    op.create_index(
        "ix_notification_deliveries_due",
        "notification_deliveries",
        ["next_attempt_at"],
        sqlite_where=sa.text("status = 'PENDING'"),
        postgresql_where=sa.text("status = 'PENDING'"),
    )


def downgrade() -> None:
    op.drop_table("notification_deliveries")
    op.drop_table("notifications")
    op.drop_table("notify_targets")
