"""The text index of log lines: what it is on each database, and how the server keeps it up.

PostgreSQL keeps a GIN trigram index (`pg_trgm`) on `log_lines.message`. An insert only appends
the new lines' trigrams to the index's pending list (searches read it too); `merge_pending`
moves the list into the index every `MERGE_S`, on a connection of its own. Left to the inserts,
the merge ran inside the write group that filled the list past its limit, holding that group's
worker rows for 100 ms to 1 s under GOLIAT's load (migration 0014).

SQLite's index is the FTS5 table `log_search` (trigram tokenizer, external content: it holds
trigrams of `log_lines.message` by row id, never a second copy of the text). It is not kept up by
a trigger: an FTS5 insert inside the small transactions ingest commits (a few dozen lines each)
cost 60-130 µs a line here, for the segment every commit flushes and the merges that follow,
against ~10 µs for the line itself, so a trigger would have cut ingest by a third. Instead the
indexer adds the new lines in batches from a worker thread, off the event loop, and
`log_search_state.indexed_through` records the highest id indexed, in the same transaction.
A search reads the index up to that mark and the few lines above it directly (a primary-key
range), so it always sees every committed line, indexed yet or not.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, text

from goliat_monitor.db.raw import Raw

SQLITE_TABLES = frozenset(
    {"log_search", "log_search_data", "log_search_idx", "log_search_config", "log_search_state"}
)
"""The FTS5 table, its shadow tables, and the mark: made by migration 0006, not by `tables.py`."""

PG_INDEX = "ix_log_lines_message_trgm"

INDEX_BATCH = 500
"""Most lines one indexer transaction adds: it holds SQLite's write lock for ~5-10 ms, which the
loop writer waits out in `LOCK_RETRY_S` steps; a bigger batch would show in ingest latency."""

INDEX_IDLE_S = 0.5
"""How long the indexer sleeps once it has caught up; a search reads what it has not indexed yet."""

INDEX_BUSY_S = 0.01
"""The pause between two full batches, so the loop writer gets the lock in between."""

MERGE_S = 1.0
"""How often a PostgreSQL server merges the index's pending list: a second of lines at full load
(~6,000) merges in a few tens of ms, beside the writers, not inside one of their groups."""

MERGE_LOCK = 0x474D_4D52_4745  # "GMMRGE": one replica merges at a time, the others skip the round


def include_object(_obj: Any, name: str | None, type_: str, _reflected: bool, _compare_to: Any) -> bool:
    """Alembic's filter: the text index is made by migration 0006 only, per database, so schema
    comparisons against `tables.metadata` leave it out."""
    if type_ == "table" and name in SQLITE_TABLES:
        return False
    return not (type_ == "index" and name == PG_INDEX)


def indexed_through(conn: Connection) -> int:
    """The highest log line id SQLite's index holds (every line at or below it is indexed)."""
    mark = Raw(conn).scalar("SELECT indexed_through FROM log_search_state WHERE id = 1", {})
    return int(mark or 0)


def index_new_lines(conn: Connection, limit: int | None = INDEX_BATCH) -> int:
    """Add up to `limit` lines above the mark (None: all of them) to SQLite's index and move the
    mark; returns how many were added.

    Run inside a write transaction. Lines are append-only and SQLite hands out ids in commit
    order (one writer at a time), so no line can appear below the mark later.
    """
    raw = Raw(conn)
    mark = indexed_through(conn)
    if limit is None:
        top = raw.scalar("SELECT MAX(id) FROM log_lines", {})
    else:
        top = raw.scalar(
            "SELECT MAX(id) FROM (SELECT id FROM log_lines WHERE id > :mark ORDER BY id LIMIT :limit)",
            {"mark": mark, "limit": limit},
        )
    if top is None or top <= mark:
        return 0
    added = raw.run(
        "INSERT INTO log_search (rowid, message) SELECT id, message FROM log_lines WHERE id > :mark AND id <= :top",
        {"mark": mark, "top": top},
    )
    raw.run("UPDATE log_search_state SET indexed_through = :top WHERE id = 1", {"top": top})
    return added


def index_step(engine: Engine, limit: int | None = INDEX_BATCH) -> int:
    """One indexer transaction on a connection of its own (SQLite's busy timeout waits for the lock)."""
    with engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
        return index_new_lines(conn, limit)


def merge_pending(engine: Engine) -> int | None:
    """Merge PostgreSQL's pending list into the trigram index; returns the pending pages merged,
    or None when another replica is merging (this one does not wait for it).

    On a connection of its own: the merge takes no lock the writers wait for.
    """
    with engine.connect() as conn, conn.begin():
        if not conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": MERGE_LOCK}).scalar():
            return None
        merged = conn.execute(
            text("SELECT gin_clean_pending_list(to_regclass(:index))"), {"index": PG_INDEX}
        ).scalar()
        return int(merged or 0)  # NULL: no such index (a schema older than 0006)


def index_all(engine: Engine) -> int:
    """Bring the index fully up to date in one go: after a bulk load (benchmarks), in tests.

    SQLite: every line above the mark in one transaction (a fraction per line of the server's small
    batches, but it holds the write lock throughout); returns the lines indexed. PostgreSQL: the
    pending list merged (searches saw those lines already); returns 0.
    """
    if engine.dialect.name != "sqlite":
        merge_pending(engine)
        return 0
    return index_step(engine, None)
