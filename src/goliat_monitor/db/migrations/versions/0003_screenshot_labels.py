"""screenshot labels: a tab name is a label, never a path

GOLIAT sends its `Disk I/O` tab as field `Disk_I/O`; the server used to refuse the `/`, and with it
every screenshot GOLIAT ever sent. The field name stays the tab's identity (`tab`); `label` is what
the page shows. Rows stored before this revision only ever had names without `/`, whose label is
the field name with `_` back to spaces, as GOLIAT's client replaced them. Their blobs keep the keys
they were stored under (`blob_key` is per row); the next upload of a tab stores it under the new,
derived key.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("screenshots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("label", sa.String(length=128), nullable=True))
    screenshots = sa.table("screenshots", sa.column("tab", sa.String), sa.column("label", sa.String))
    op.execute(screenshots.update().values(label=sa.func.replace(screenshots.c.tab, "_", " ")))
    with op.batch_alter_table("screenshots", schema=None) as batch_op:
        batch_op.alter_column("label", existing_type=sa.String(length=128), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("screenshots", schema=None) as batch_op:
        batch_op.drop_column("label")
