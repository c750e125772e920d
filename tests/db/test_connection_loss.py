"""PostgreSQL connections that break under the writer threads and readers: 503, then a fresh one.

The shared test server is never restarted: these tests end their own sessions with
`pg_terminate_backend`, as a restart or failover ends them. The whole restart under load is
`tests/e2e/test_database_outage.py`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

from goliat_monitor.db.engine import Database
from goliat_monitor.db.outages import is_connection_lost, pg_connect_args
from goliat_monitor.errors import DatabaseUnavailable


@pytest.fixture
def database(pg_url: str) -> Iterator[Database]:
    db = Database(pg_url, write_threads=1, read_threads=2)
    db.write_sync(lambda conn: conn.exec_driver_sql("CREATE TABLE items (n INTEGER)"))
    yield db
    db.close()


def insert(n: int) -> Any:
    def write(conn: Connection) -> int:
        conn.execute(text("INSERT INTO items (n) VALUES (:n)"), {"n": n})
        return n

    return write


def stored(db: Database) -> list[int]:
    return list(
        db.read_sync(lambda conn: conn.execute(text("SELECT n FROM items ORDER BY n")).scalars().all())
    )


def end_other_sessions(db: Database) -> int:
    """What a restart does to this database's sessions (but ours): ends them."""
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_connection_ended_while_idle_costs_no_write(database: Database) -> None:
    """The writer's and the readers' connections die between two writes: the next ones just work."""
    database.write_sync(insert(1))
    stored(database)
    assert end_other_sessions(database) >= 1
    assert database.write_sync(insert(2)) == 2
    assert stored(database) == [1, 2]


def test_a_connection_lost_under_a_group_fails_it_with_503_and_the_writer_carries_on(
    database: Database,
) -> None:
    def dies_mid_write(conn: Connection) -> None:
        conn.execute(text("INSERT INTO items (n) VALUES (99)"))
        conn.exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())")

    with pytest.raises(DatabaseUnavailable) as refused:
        database.write_sync(dies_mid_write)
    assert refused.value.status_code == 503 and refused.value.retry_after_s >= 1
    assert is_connection_lost(refused.value.__cause__ or refused.value)
    assert database.write_sync(insert(3)) == 3  # the same writer thread, on a new connection
    assert stored(database) == [3]


def test_a_read_that_loses_its_connection_is_a_503(database: Database) -> None:
    with pytest.raises(DatabaseUnavailable):
        database.read_sync(lambda conn: conn.exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())"))
    assert stored(database) == []


def test_an_unreachable_database_fails_writes_at_once_and_close_does_not_wait() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:9/nothing"  # the discard port: connection refused
    db = Database(url, write_threads=2, read_threads=1)
    try:
        for _ in range(3):
            with pytest.raises(DatabaseUnavailable):
                db.write_sync(insert(1))
        with pytest.raises(DatabaseUnavailable):
            db.read_sync(lambda conn: conn.exec_driver_sql("SELECT 1"))
    finally:
        db.close(timeout=5)


def test_what_counts_as_a_lost_connection() -> None:
    assert is_connection_lost(psycopg.OperationalError("connection failed: Connection refused"))
    assert is_connection_lost(psycopg.errors.AdminShutdown("terminating connection"))
    assert not is_connection_lost(psycopg.errors.SerializationFailure("could not serialize"))
    assert not is_connection_lost(psycopg.errors.UniqueViolation("duplicate key"))
    locked = OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))
    assert not is_connection_lost(locked)
    assert not is_connection_lost(ValueError("refused"))


def test_connect_defaults_yield_to_the_url() -> None:
    assert pg_connect_args("postgresql+psycopg://h/db")["connect_timeout"] == 5
    assert "connect_timeout" not in pg_connect_args("postgresql+psycopg://h/db?connect_timeout=20")
