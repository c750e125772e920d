"""indexes for lookups that scanned a growing table

- workers by machine: a machine that comes back after being offline looks up its old sessions to
  take over their RUNNING assignments; that lookup scanned every session the server ever had.
- received_messages by time: housekeeping forgets message ids older than a day every few seconds;
  that delete read the whole table (a day of agent messages).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.create_index("ix_workers_machine", ["machine_id", "agent_id"], unique=False)
    with op.batch_alter_table("received_messages", schema=None) as batch_op:
        batch_op.create_index("ix_received_messages_received_at", ["received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("received_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_received_messages_received_at")
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_index("ix_workers_machine")
