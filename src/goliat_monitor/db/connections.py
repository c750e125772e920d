"""How connections are made, per database: the engine and the settings each connection gets.

Kept apart from `engine.py` (transactions and the writers) because the CLI, the migrations and
the tests need an engine without a `Database` around it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import NullPool

from goliat_monitor.db import batching
from goliat_monitor.db.outages import pg_connect_args

log = logging.getLogger("goliat_monitor.db.engine")


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine with the per-database settings this server relies on."""
    if url.startswith("sqlite"):
        is_memory = ":memory:" in url or url in ("sqlite://", "sqlite:///")
        if is_memory:
            engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=NullPool)
        else:
            # Enough pooled connections for every reader and writer thread: a connection made
            # past the pool is opened, set up with PRAGMAs and closed again on every request.
            engine = create_engine(
                url,
                connect_args={"check_same_thread": False, "timeout": 30},
                pool_size=pool_size,
                max_overflow=pool_size,
            )
        _configure_sqlite(engine)
        return engine
    # pre-ping: a pooled connection the database dropped (a restart) is replaced at checkout, and
    # SQLAlchemy then recycles every connection older than the failure.
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args=pg_connect_args(url),
    )
    batching.install(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers never block the writer and vice versa.
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash; only a power loss can drop the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # A second server process or a CLI command may hold the write lock for a moment.
        cursor.execute("PRAGMA busy_timeout=30000")
        # A WAL file left behind by a checkpoint is cut back to this size instead of keeping its peak.
        cursor.execute("PRAGMA journal_size_limit=67108864")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the lock up front so a transaction never fails half-way on an upgrade.
        mode = "IMMEDIATE" if conn.get_execution_options().get("sqlite_immediate") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


def leave_checkpoints_to_the_checkpointer(dbapi_connection: Any, _record: Any) -> None:
    """A connect hook for the server's SQLite engine: no checkpoint inside a commit.

    Left to itself, SQLite checkpoints inside whichever commit crosses 1,000 WAL pages: that
    commit then waits for two fsyncs (50-80 ms here) while every GOLIAT message behind it queues.
    """
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


def checkpoint_until(engine: Engine, stopping: threading.Event, interval_s: float) -> None:
    """Copy the WAL into the database file beside the writer, never inside one of its commits.

    Runs on a thread of its own until `stopping` is set. PASSIVE checkpoints take no lock a
    writer or a reader waits for; pages a reader still needs stay in the WAL until the next round.
    """
    conn: Any = None
    try:
        while not stopping.wait(interval_s):
            try:
                if conn is None:
                    conn = engine.raw_connection()
                conn.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except Exception:  # a busy or vanished database file must not end the thread
                log.warning("WAL checkpoint failed; retrying", exc_info=True)
                if conn is not None:
                    conn.invalidate()
                    conn = None
    finally:
        if conn is not None:
            conn.close()
