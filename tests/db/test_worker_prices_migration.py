"""Migration 0013_worker_prices goes down and up again on SQLite and PostgreSQL, keeping the workers."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect, text

from goliat_monitor.db import migrate
from goliat_monitor.db.connections import make_engine


def _columns(engine: object) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns("workers")}


def test_the_price_column_comes_and_goes(backend: str | None, tmp_path: Path) -> None:
    engine = make_engine(backend or f"sqlite:///{tmp_path / 'prices.sqlite3'}")
    try:
        migrate.upgrade(engine)
        assert "price_per_hour" in _columns(engine)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO workers (id, machine_id, status, created_at, updated_at, last_seen, price_per_hour)"
                    " VALUES ('w1', '203.0.113.7', 'IDLE', 1, 1, 1, 2.5)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO log_lines (worker_id, ord, ts, log_type, message) VALUES ('w1', 1, 1, 'info', 'kept')"
                )
            )
        config = migrate.alembic_config(str(engine.url))
        with engine.connect() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0013_worker_prices-1")  # whatever it is chained after
            conn.commit()
        assert "price_per_hour" not in _columns(engine)
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        with engine.connect() as conn:
            row = conn.execute(text("SELECT machine_id, price_per_hour FROM workers")).one()
            assert tuple(row) == ("203.0.113.7", None)  # the worker stays; its price went with the column
            assert conn.execute(text("SELECT count(*) FROM log_lines")).scalar_one() == 1
    finally:
        engine.dispose()
