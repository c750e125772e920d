"""logs ordered by production time; progress and endings remembered for late messages

- workers: `log_run` and `log_max_sequence` (a run counter and the highest sequence) give way to
  `log_floor`, `log_newest` and `log_streams`, since `goliat parallel` sends several sequence
  streams under one machine id. Stored keys keep their meaning: they lie below the bit every new
  key sets, so old lines keep their order and read before new ones.
- workers: `progress_sent_at` and `stage_sent_at` (newest progress wins), `ended_at` and
  `ended_exit_code` (the "finished with errors" GOLIAT sends after a memory_error).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ended_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("ended_exit_code", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("progress_sent_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("stage_sent_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("log_floor", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("log_newest", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("log_streams", sa.Text(), nullable=True))
    # A worker with lines keeps saying so (the page shows its GUI state) through `log_newest`.
    op.execute(
        "UPDATE workers SET log_newest = (SELECT MAX(ts) FROM log_lines WHERE log_lines.worker_id = workers.id)"
        " WHERE log_max_sequence >= 0"
    )
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_column("log_max_sequence")
        batch_op.drop_column("log_run")


def downgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("log_run", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("log_max_sequence", sa.BigInteger(), server_default="-1", nullable=False)
        )
    # The old scheme reads a new key as a run of (key >> 43); the next run starts above it, so lines
    # written after the downgrade still read after those written before it.
    op.execute(
        "UPDATE workers SET log_max_sequence = 0, log_run = 1 + COALESCE((SELECT MAX(ord) FROM log_lines"
        " WHERE log_lines.worker_id = workers.id), 0) / 8796093022208 WHERE log_newest IS NOT NULL"
    )
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_column("log_streams")
        batch_op.drop_column("log_newest")
        batch_op.drop_column("log_floor")
        batch_op.drop_column("stage_sent_at")
        batch_op.drop_column("progress_sent_at")
        batch_op.drop_column("ended_exit_code")
        batch_op.drop_column("ended_at")
