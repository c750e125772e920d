"""Forgetting old message ids: oldest first, in bounded rounds, on both databases (the retention
pass that repeats the rounds is tested in test_retention.py)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert, select

from goliat_monitor.db import migrate
from goliat_monitor.db.engine import Database
from goliat_monitor.db.queries import ingest
from goliat_monitor.db.tables import received_messages


def test_old_message_ids_are_forgotten_oldest_first_in_bounded_rounds(
    backend: str | None, tmp_path: Path
) -> None:
    db = Database(backend or f"sqlite:///{tmp_path / 'housekeeping.sqlite3'}")
    try:
        migrate.upgrade(db.engine)
        rows = [
            {"machine_id": f"m{n % 3}", "message_id": f"id{n}", "received_at": float(n)} for n in range(50)
        ]
        db.write_sync(lambda conn: conn.execute(insert(received_messages), rows))

        assert db.write_sync(lambda conn: ingest.forget_old_message_ids(conn, 30.0, limit=12)) == 12
        assert db.write_sync(lambda conn: ingest.forget_old_message_ids(conn, 30.0, limit=12)) == 12
        assert db.write_sync(lambda conn: ingest.forget_old_message_ids(conn, 30.0, limit=12)) == 6
        assert db.write_sync(lambda conn: ingest.forget_old_message_ids(conn, 30.0, limit=12)) == 0

        kept = db.read_sync(
            lambda conn: conn.execute(select(received_messages.c.received_at)).scalars().all()
        )
        assert sorted(kept) == [float(n) for n in range(30, 50)]
    finally:
        db.close()
