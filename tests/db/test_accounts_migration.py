"""Migration 0007_accounts goes down and up again on SQLite and PostgreSQL, leaving the campaign."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect, text

from goliat_monitor.db import migrate
from goliat_monitor.db.connections import make_engine

TABLES = {"users", "sessions", "api_tokens", "auth_failures", "audit_log"}


def test_the_accounts_tables_come_and_go(backend: str | None, tmp_path: Path) -> None:
    engine = make_engine(backend or f"sqlite:///{tmp_path / 'accounts.sqlite3'}")
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
        config = migrate.alembic_config(str(engine.url))
        with engine.connect() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0007_accounts-1")  # whatever it is chained after
            conn.commit()
        assert not TABLES & set(inspect(engine).get_table_names())
        migrate.upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM workers")).scalar_one() == 1
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()
