"""worker rows updated in place: no index on a column every message changes

Every GOLIAT message updates its worker's row. On PostgreSQL an update that changes no indexed
column and finds room in its page is a HOT update: no index is touched. `ix_workers_last_seen`
made every one of them a full update (a new entry in each of the table's three indexes, ~99 % of
updates measured); nothing needs it (the worker list reads every live session anyway). The table
also leaves half of each page free on PostgreSQL, so the new row version fits beside the old.

Revision ID: 0011_hot_worker_updates
Revises: 0010_simulation_results
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0011_hot_worker_updates"
down_revision = "0010_simulation_results"
branch_labels = None
depends_on = None

WORKERS_FILLFACTOR = 50


def upgrade() -> None:
    op.drop_index("ix_workers_last_seen", table_name="workers")
    if op.get_bind().dialect.name == "postgresql":
        # Applies to pages written from now on; a VACUUM FULL would rewrite the old ones, but a
        # migration must not lock the table for that: the live rows move as they are updated.
        op.execute(f"ALTER TABLE workers SET (fillfactor = {WORKERS_FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE workers RESET (fillfactor)")
    op.create_index("ix_workers_last_seen", "workers", ["last_seen"])
