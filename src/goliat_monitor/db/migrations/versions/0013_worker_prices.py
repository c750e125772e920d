"""a price per hour per worker machine, for GPU-hours and cost

`workers.price_per_hour` overrides the server's default price (GOLIAT_MONITOR_PRICE_PER_HOUR)
for one machine; NULL means the default. Like the label it names the machine: every session of it
carries the same value. Not indexed (a message never changes it, and the row stays HOT-updated).

Revision ID: 0013_worker_prices
Revises: 0012_notifications
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_worker_prices"
down_revision = "0012_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN on both databases: no table rebuild (SQLite's batch mode would copy
    # `workers` for nothing), and PostgreSQL adds a nullable column without rewriting the table.
    op.add_column("workers", sa.Column("price_per_hour", sa.Float(), nullable=True))


def downgrade() -> None:
    # SQLite has dropped unindexed columns in place since 3.35; no rebuild of `workers` either.
    op.execute("ALTER TABLE workers DROP COLUMN price_per_hour")
