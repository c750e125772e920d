"""How much the database holds, and how much the artifacts it indexes weigh (for the dashboard)."""

from __future__ import annotations

from sqlalchemy import Connection, func, select, text

from goliat_monitor.db.tables import result_files, screenshots


def database_bytes(conn: Connection) -> int:
    """SQLite: the database file's pages (the WAL beside it is at most a few MB and shrinks back);
    PostgreSQL: `pg_database_size`, every table, index and TOAST file of the database."""
    if conn.dialect.name == "sqlite":
        pages = conn.execute(text("PRAGMA page_count")).scalar_one()
        size = conn.execute(text("PRAGMA page_size")).scalar_one()
        return int(pages) * int(size)
    return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


def recorded_artifact_bytes(conn: Connection) -> int:
    """The sizes of every result file and screenshot the database indexes, summed."""
    files = conn.execute(select(func.coalesce(func.sum(result_files.c.size), 0))).scalar_one()
    shots = conn.execute(select(func.coalesce(func.sum(screenshots.c.size), 0))).scalar_one()
    return int(files) + int(shots)
