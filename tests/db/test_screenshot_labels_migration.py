"""Migration 0003 on both databases: screenshots stored before it get their label and stay readable."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect, text

from goliat_monitor.db import migrate
from goliat_monitor.db.connections import make_engine

OLD_ROWS = [
    ("System_Utilization", "screenshots/abc/System_Utilization"),
    ("Timings", "screenshots/abc/Timings"),
]


def test_rows_from_before_0003_get_labels_and_downgrade_drops_them(
    backend: str | None, tmp_path: Path
) -> None:
    engine = make_engine(backend or f"sqlite:///{tmp_path / 'labels.sqlite3'}")
    try:
        migrate.upgrade(engine)
        config = migrate.alembic_config(str(engine.url))
        with engine.connect() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0002")
            conn.commit()
        assert "label" not in {c["name"] for c in inspect(engine).get_columns("screenshots")}
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO workers (id, machine_id, status, created_at, updated_at, last_seen)"
                    " VALUES ('w1', '203.0.113.7', 'IDLE', 1, 1, 1)"
                )
            )
            for tab, key in OLD_ROWS:
                conn.execute(
                    text(
                        "INSERT INTO screenshots (worker_id, tab, blob_key, content_type, size, updated_at)"
                        " VALUES ('w1', :tab, :key, 'image/jpeg', 3, 1)"
                    ),
                    {"tab": tab, "key": key},
                )

        migrate.upgrade(engine)

        with engine.connect() as conn:
            rows = conn.execute(text("SELECT tab, label, blob_key FROM screenshots ORDER BY tab")).all()
        assert [tuple(row) for row in rows] == [
            ("System_Utilization", "System Utilization", "screenshots/abc/System_Utilization"),
            ("Timings", "Timings", "screenshots/abc/Timings"),
        ]
        label = next(c for c in inspect(engine).get_columns("screenshots") if c["name"] == "label")
        assert label["nullable"] is False
    finally:
        engine.dispose()
