"""what GOLIAT's GUI tabs show, as data: disk I/O and ETA samples, profiler timings

- worker_samples gains the agent's disk I/O figures (read and write MB/s, page faults per second)
  and the ETA a progress sample was taken with, for the Disk I/O and Time Remaining charts;
- timing_samples keeps every phase and subtask duration the agent parsed from GOLIAT's output,
  indexed by worker and run, for the Timings table and pies.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("worker_samples", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disk_read_mbps", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("disk_write_mbps", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("page_faults_per_sec", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("eta_seconds", sa.Float(), nullable=True))
    op.create_table(
        "timing_samples",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("worker_id", sa.String(length=36), nullable=False),
        sa.Column("assignment_id", sa.String(length=36), nullable=True),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("phase", sa.String(length=64), nullable=False),
        sa.Column("subtask", sa.String(length=255), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("simulation", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["workers.id"],
            name=op.f("fk_timing_samples_worker_id_workers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timing_samples")),
    )
    with op.batch_alter_table("timing_samples", schema=None) as batch_op:
        batch_op.create_index(
            "ix_timing_samples_worker_run", ["worker_id", "assignment_id", "id"], unique=False
        )
        batch_op.create_index("ix_timing_samples_worker_id", ["worker_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("timing_samples", schema=None) as batch_op:
        batch_op.drop_index("ix_timing_samples_worker_id")
        batch_op.drop_index("ix_timing_samples_worker_run")
    op.drop_table("timing_samples")
    with op.batch_alter_table("worker_samples", schema=None) as batch_op:
        batch_op.drop_column("eta_seconds")
        batch_op.drop_column("page_faults_per_sec")
        batch_op.drop_column("disk_write_mbps")
        batch_op.drop_column("disk_read_mbps")
