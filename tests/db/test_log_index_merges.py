"""PostgreSQL's log text index: the server merges its pending list, so no write group has to.

A GIN index appends new lines to a pending list and merges the list into the index once it
outgrows `gin_pending_list_limit`, inside the insert that crossed it: under GOLIAT's load a write
group holding its workers' rows, stalled for 100 ms to 1 s. Migration 0014 raises the limit and
the server merges every `search_index.MERGE_S` on a connection of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, text

from goliat_monitor.db import migrate, search_index
from goliat_monitor.db.connections import make_engine
from goliat_monitor.server import services
from tests.api.helpers import gui, log_batch
from tests.conftest import LiveServer

PENDING_LIMIT = "gin_pending_list_limit=65536"


def prepare(engine: Engine) -> None:
    """pgstattuple shows the pending list; autovacuum, which merges it too, stays out of the way."""
    with engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pgstattuple"))
        conn.execute(text("ALTER TABLE log_lines SET (autovacuum_enabled = false)"))


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    prepare(engine)
    yield engine
    engine.dispose()


def pending_lines(engine: Engine) -> int:
    """Lines whose trigrams wait in the pending list, not merged into the index yet."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT pending_tuples FROM pgstatginindex(:index)"), {"index": search_index.PG_INDEX}
            ).scalar_one()
        )


def add_lines(engine: Engine, count: int, *, worker: str = "w1") -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO workers (id, machine_id, status, created_at, updated_at, last_seen)"
                " VALUES (:id, :id, 'IDLE', 1, 1, 1) ON CONFLICT DO NOTHING"
            ),
            {"id": worker},
        )
        conn.execute(
            text(
                "INSERT INTO log_lines (worker_id, ord, ts, log_type, message)"
                " SELECT :worker, n, n, 'info', 'Simulation ' || n || ' CUDA_ERROR_LAUNCH_FAILED'"
                " FROM generate_series(1, :count) AS n"
            ),
            {"worker": worker, "count": count},
        )


def found(engine: Engine, needle: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM log_lines WHERE message ILIKE :pattern"),
                {"pattern": f"%{needle}%"},
            ).scalar_one()
        )


def index_options(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        options = conn.execute(
            text("SELECT reloptions FROM pg_class WHERE relname = :index"), {"index": search_index.PG_INDEX}
        ).scalar_one()
    return list(options or [])


def test_the_migration_leaves_merging_to_the_server_and_back(engine: Engine) -> None:
    assert index_options(engine) == [PENDING_LIMIT]
    config = migrate.alembic_config(str(engine.url))
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0014_log_index_merges-1")
        conn.commit()
    assert index_options(engine) == []  # back to the server-wide 4 MB
    migrate.upgrade(engine)
    assert index_options(engine) == [PENDING_LIMIT]


def test_inserted_lines_wait_in_the_pending_list_until_merged_and_are_found_throughout(
    engine: Engine,
) -> None:
    add_lines(engine, 3000)
    assert pending_lines(engine) == 3000  # the insert did not merge them (the limit is far off)
    assert found(engine, "cuda_error_launch") == 3000  # a search reads the pending list too
    assert (search_index.merge_pending(engine) or 0) > 0
    assert pending_lines(engine) == 0
    assert found(engine, "cuda_error_launch") == 3000
    assert found(engine, "Simulation 2999 ") == 1
    assert search_index.merge_pending(engine) == 0  # nothing left to merge


def test_a_merge_another_replica_is_running_is_skipped_not_waited_for(engine: Engine) -> None:
    add_lines(engine, 100)
    with engine.connect() as other:
        other.execute(text("SELECT pg_advisory_lock(:key)"), {"key": search_index.MERGE_LOCK})
        started = time.monotonic()
        assert search_index.merge_pending(engine) is None
        assert time.monotonic() - started < 2
        assert pending_lines(engine) == 100
        other.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": search_index.MERGE_LOCK})
        other.commit()
    assert (search_index.merge_pending(engine) or 0) > 0
    assert pending_lines(engine) == 0


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.parametrize("merge_s", [0.1, 3600.0], ids=["merging", "never"])
def test_a_server_merges_the_lines_goliat_sends(
    make_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch, merge_s: float
) -> None:
    monkeypatch.setattr(search_index, "MERGE_S", merge_s)
    server = make_server()
    engine = server.context.db.engine
    prepare(engine)
    batch = log_batch(0, [(f"Voxel grid {n} ready", "info") for n in range(50)])
    assert gui(server.client, batch).status_code == 200
    deadline = time.monotonic() + 3
    while pending_lines(engine) and time.monotonic() < deadline:
        time.sleep(0.05)
    # The control: a server that never merges leaves them pending, so the wait above can fail.
    assert pending_lines(engine) == (0 if merge_s < 1 else 50)
    assert found(engine, "voxel grid") == 50


def test_a_merge_that_keeps_failing_is_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(search_index, "MERGE_S", 0.02)
    nowhere = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    context: Any = SimpleNamespace(db=SimpleNamespace(engine=nowhere))

    async def a_few_rounds() -> None:
        task = asyncio.create_task(services.merge_log_index(context))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        with caplog.at_level(logging.WARNING, logger=services.__name__):
            asyncio.run(a_few_rounds())
    finally:
        nowhere.dispose()
    warnings = [r for r in caplog.records if "pending list" in r.getMessage()]
    assert len(warnings) == 1
