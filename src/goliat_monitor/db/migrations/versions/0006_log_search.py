"""indexed log search: a trigram index of log text on both databases; lines remember their run

- log_lines gains `assignment_id`, the assignment the worker ran when it sent the line (what
  `GET /api/logs?study=` filters on). Lines stored before this upgrade get the assignment their
  worker session had last started by then, from `assignment_events` (approximate: the line's own
  time against the server's event times), or none.
- SQLite: `log_search`, an FTS5 table over `log_lines.message` (external content, trigram
  tokenizer, detail=none: a candidate filter, every hit is checked with LIKE), and
  `log_search_state`, the highest line id it holds. New lines are indexed in bulk off the ingest
  path (`db/search_index.py`); a search reads the few lines above that mark directly.
- PostgreSQL: the `pg_trgm` extension and a GIN trigram index on `log_lines.message` under the
  "C" collation, which PostgreSQL keeps up itself and `message COLLATE "C" ILIKE '%text%'` uses.

Both are filled for the lines already stored.

Revision ID: 0006_log_search
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from alembic import op

revision = "0006_log_search"
down_revision = "0005"
branch_labels = None
depends_on = None

SQLITE_TRIGRAM = (3, 34, 0)

# The worker session's newest assignment event at or before the line: a start means the line
# belongs to that run; an ending (or nothing) means it belongs to none.
BACKFILL = """
UPDATE log_lines SET assignment_id = (
    SELECT CASE WHEN e.to_status = 'RUNNING' THEN e.assignment_id END
    FROM assignment_events e
    WHERE e.worker_id = log_lines.worker_id AND e.ts <= log_lines.ts
    ORDER BY e.ts DESC, e.id DESC
    LIMIT 1
)
WHERE worker_id IN (SELECT worker_id FROM assignment_events WHERE worker_id IS NOT NULL)
"""


def upgrade() -> None:
    op.add_column("log_lines", sa.Column("assignment_id", sa.String(length=36), nullable=True))
    op.execute(BACKFILL)
    if op.get_bind().dialect.name == "sqlite":
        if sqlite3.sqlite_version_info < SQLITE_TRIGRAM:
            raise RuntimeError(
                f"log search needs SQLite >= 3.34 (FTS5's trigram tokenizer); this Python has"
                f" {sqlite3.sqlite_version}. Use a newer Python build, or PostgreSQL."
            )
        op.execute(
            "CREATE VIRTUAL TABLE log_search USING fts5(message, content='log_lines',"
            " content_rowid='id', tokenize='trigram', detail=none, columnsize=0)"
        )
        op.execute("INSERT INTO log_search(log_search) VALUES ('rebuild')")
        op.execute("CREATE TABLE log_search_state (id INTEGER PRIMARY KEY, indexed_through INTEGER NOT NULL)")
        op.execute(
            "INSERT INTO log_search_state (id, indexed_through) SELECT 1, COALESCE(MAX(id), 0) FROM log_lines"
        )
        # Lines are append-only, but a worker's lines go with it (ON DELETE CASCADE): an
        # external-content index must be told the old text of every indexed line that goes.
        op.execute(
            "CREATE TRIGGER log_lines_search_delete AFTER DELETE ON log_lines"
            " WHEN old.id <= (SELECT indexed_through FROM log_search_state WHERE id = 1)"
            " BEGIN INSERT INTO log_search(log_search, rowid, message) VALUES ('delete', old.id, old.message); END"
        )
    else:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        # Under the "C" collation ILIKE folds A-Z only, as SQLite's LIKE does, so both databases
        # match the same lines; the query names the same collation, so the planner can use it.
        op.execute(
            'CREATE INDEX ix_log_lines_message_trgm ON log_lines USING gin ((message COLLATE "C") gin_trgm_ops)'
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS log_lines_search_delete")
        op.execute("DROP TABLE IF EXISTS log_search_state")
        op.execute("DROP TABLE IF EXISTS log_search")
    else:
        # The extension stays: other databases' objects or other tools may use it.
        op.execute("DROP INDEX IF EXISTS ix_log_lines_message_trgm")
    op.drop_column("log_lines", "assignment_id")
