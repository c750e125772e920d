"""Migration 0006 indexes the lines a database already holds and links them to their runs."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import text

from goliat_monitor.db import migrate, search_index
from goliat_monitor.db.connections import make_engine
from goliat_monitor.db.queries.logs import LogSearch, search_lines

LINES = [  # (ts, message): before the run started, during it, after it ended
    (5.0, "before: Mesh READY"),
    (15.0, "during: mesh ready, solver running"),
    (25.0, "after: MESH ready again"),
]


def test_upgrade_indexes_existing_lines_and_links_them_to_their_run(
    backend: str | None, tmp_path: Path
) -> None:
    engine = make_engine(backend or f"sqlite:///{tmp_path / 'search.sqlite3'}")
    try:
        migrate.upgrade(engine)  # PostgreSQL test databases come migrated: go back down first
        config = migrate.alembic_config(str(engine.url))
        with engine.connect() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0005")
            conn.commit()
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO workers (id, machine_id, status, created_at, updated_at, last_seen)"
                    " VALUES ('w1', '203.0.113.7', 'IDLE', 1, 1, 1)"
                )
            )
            conn.execute(
                text("INSERT INTO super_studies (id, name, created_at, updated_at) VALUES ('s1', 'c', 1, 1)")
            )
            conn.execute(
                text(
                    'INSERT INTO assignments (id, super_study_id, "index", status, split_config, created_at,'
                    " updated_at) VALUES ('a1', 's1', 0, 'COMPLETED', '{}', 1, 1)"
                )
            )
            for ts, status in ((10.0, "RUNNING"), (20.0, "COMPLETED")):
                conn.execute(
                    text(
                        "INSERT INTO assignment_events (assignment_id, ts, actor, worker_id, to_status)"
                        " VALUES ('a1', :ts, 'test', 'w1', :status)"
                    ),
                    {"ts": ts, "status": status},
                )
            for ord_, (ts, message) in enumerate(LINES):
                conn.execute(
                    text(
                        "INSERT INTO log_lines (worker_id, ord, ts, log_type, message)"
                        " VALUES ('w1', :ord, :ts, 'info', :message)"
                    ),
                    {"ord": ord_, "ts": ts, "message": message},
                )

        migrate.upgrade(engine)

        with engine.connect() as conn:
            runs = conn.execute(text("SELECT message, assignment_id FROM log_lines ORDER BY id")).all()
            assert [tuple(r) for r in runs] == [(LINES[0][1], None), (LINES[1][1], "a1"), (LINES[2][1], None)]
            found = search_lines(conn, LogSearch(text="mesh READY"))
            assert [row.message for row in found] == [m for _, m in reversed(LINES)]
            in_study = search_lines(conn, LogSearch(text="mesh ready", study_id="s1"))
            assert [row.message for row in in_study] == [LINES[1][1]]
            if engine.dialect.name == "sqlite":
                # Every line is in the FTS5 index itself, not only found by the read above the mark.
                top = conn.execute(text("SELECT MAX(id) FROM log_lines")).scalar_one()
                assert search_index.indexed_through(conn) == top
                hits = conn.execute(
                    text("SELECT rowid FROM log_search WHERE log_search MATCH '\"esh\"'")
                ).all()
                assert len(hits) == len(LINES)
            else:
                # Whether the planner may use it at once depends on the cluster's other open
                # transactions (the backfill's HOT chains), so check the index itself.
                definition = conn.execute(
                    text("SELECT indexdef FROM pg_indexes WHERE indexname = :name"),
                    {"name": search_index.PG_INDEX},
                ).scalar_one()
                assert 'gin (message COLLATE "C" gin_trgm_ops)' in definition
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()
