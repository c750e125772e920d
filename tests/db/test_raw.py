"""The driver-cursor helper of the hot path, on both databases."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from goliat_monitor.db import raw
from goliat_monitor.db.engine import Database
from goliat_monitor.db.raw import Raw


def make_database(backend: str | None, tmp_path: Path) -> Database:
    db = Database(backend or f"sqlite:///{tmp_path / 'raw.sqlite3'}")
    db.write_sync(lambda conn: conn.execute(text("CREATE TABLE raw_items (n INTEGER, s TEXT, x FLOAT)")))
    return db


def test_insert_spans_several_statements_and_keeps_every_row(backend: str | None, tmp_path: Path) -> None:
    db = make_database(backend, tmp_path)
    try:
        count = raw.INSERT_CHUNK * 2 + 7
        rows = [(n, f"line {n} with 'quotes' and %s", n / 3) for n in range(count)]
        db.write_sync(lambda conn: Raw(conn).insert("raw_items", ("n", "s", "x"), rows))
        stored = db.read_sync(
            lambda conn: conn.execute(text("SELECT n, s, x FROM raw_items ORDER BY n")).all()
        )
        assert [tuple(row) for row in stored] == rows
    finally:
        db.close()


def test_one_returns_named_columns_also_from_its_cache(backend: str | None, tmp_path: Path) -> None:
    db = make_database(backend, tmp_path)
    try:
        db.write_sync(
            lambda conn: Raw(conn).insert("raw_items", ("n", "s", "x"), [(1, "a", 0.5), (2, "b", 1.5)])
        )
        sql = "SELECT * FROM raw_items WHERE n = :n"
        first = db.read_sync(lambda conn: Raw(conn).one(sql, {"n": 1}))
        second = db.read_sync(lambda conn: Raw(conn).one(sql, {"n": 2}))
        missing = db.read_sync(lambda conn: Raw(conn).one(sql, {"n": 3}))
        assert first == {"n": 1, "s": "a", "x": 0.5}
        assert second == {"n": 2, "s": "b", "x": 1.5}
        assert missing is None
    finally:
        db.close()
