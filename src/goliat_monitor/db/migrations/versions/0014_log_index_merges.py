"""the log text index's pending list is merged by the server, not by the insert that fills it

PostgreSQL's GIN index appends new entries to a pending list and merges the list into the index
once it exceeds `gin_pending_list_limit` (4 MB by default), inside whichever insert crossed the
limit. Under GOLIAT's load that insert was a write group holding its workers' rows: the merge of
a few thousand lines stalled the group for 100 ms to 1 s, and every message queued behind it
waited as long. The server now merges the list every second on a connection of its own
(`search_index.merge_pending`); the limit is raised so an insert merges only when that has not
happened for a long while (the server down, or not allowed to merge), with autovacuum merging too.

Revision ID: 0014_log_index_merges
Revises: 0013_worker_prices
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0014_log_index_merges"
down_revision = "0013_worker_prices"
branch_labels = None
depends_on = None

PENDING_LIST_LIMIT_KB = 65536
"""64 MB: ~20 s of lines at 2,000 GOLIAT messages a second; the server merges every second."""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"ALTER INDEX ix_log_lines_message_trgm SET (gin_pending_list_limit = {PENDING_LIST_LIMIT_KB})"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER INDEX ix_log_lines_message_trgm RESET (gin_pending_list_limit)")
