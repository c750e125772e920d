"""Migration 0012_notifications goes down and up again on SQLite and PostgreSQL, leaving the campaign."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect, text

from goliat_monitor.db import migrate
from goliat_monitor.db.connections import make_engine

TABLES = {"notify_targets", "notifications", "notification_deliveries"}


def test_the_notification_tables_come_and_go(backend: str | None, tmp_path: Path) -> None:
    engine = make_engine(backend or f"sqlite:///{tmp_path / 'notify.sqlite3'}")
    try:
        migrate.upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO workers (id, machine_id, status, created_at, updated_at, last_seen)"
                    " VALUES ('w1', '203.0.113.7', 'IDLE', 1, 1, 1)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO notifications (kind, dedup_key, subject, title, body, created_at)"
                    " VALUES ('digest', 'digest:2026-12-02', 'digest', 't', 'b', 1)"
                )
            )
        config = migrate.alembic_config(str(engine.url))
        with engine.connect() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0012_notifications-1")
            conn.commit()
        assert not TABLES & set(inspect(engine).get_table_names())
        migrate.upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM workers")).scalar_one() == 1
            assert conn.execute(text("SELECT count(*) FROM notifications")).scalar_one() == 0
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()
