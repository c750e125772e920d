"""Upgrading a database that holds a campaign keeps all of it, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import text

from goliat_monitor.db import migrate
from goliat_monitor.db.connections import make_engine

CHILD_TABLES = ("log_lines", "worker_samples", "screenshots")


def test_upgrading_from_0002_keeps_every_workers_rows(backend: str | None, tmp_path: Path) -> None:
    """SQLite's batch mode rebuilds `workers`; with foreign keys on, dropping the old copy would
    cascade into every child row. The upgrade must keep them, and leave foreign keys on."""
    engine = make_engine(backend or f"sqlite:///{tmp_path / 'upgrade.sqlite3'}")
    try:
        migrate.upgrade(engine)  # PostgreSQL test databases come migrated: go back down first
        config = migrate.alembic_config(str(engine.url))
        with engine.connect() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0002")
            conn.commit()
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO workers (id, machine_id, status, created_at, updated_at, last_seen)"
                    " VALUES ('w1', '203.0.113.7', 'RUNNING', 1, 1, 1)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO log_lines (worker_id, ord, ts, log_type, message)"
                    " VALUES ('w1', 1, 1, 'info', 'kept')"
                )
            )
            conn.execute(text("INSERT INTO worker_samples (worker_id, ts, progress) VALUES ('w1', 1, 50)"))
            conn.execute(
                text(
                    "INSERT INTO screenshots (worker_id, tab, blob_key, content_type, size, updated_at)"
                    " VALUES ('w1', 'Timings', 'screenshots/w1/Timings', 'image/jpeg', 3, 1)"
                )
            )

        migrate.upgrade(engine)

        with engine.connect() as conn:
            counts = {
                table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in CHILD_TABLES
            }
            if engine.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert counts == dict.fromkeys(CHILD_TABLES, 1)
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()
