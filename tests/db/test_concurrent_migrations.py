"""Replicas starting together on a fresh PostgreSQL database all migrate it, and it gets one schema.

Separate processes, as replicas are (Alembic keeps its migration context in a module global, so
threads of one process would not be a fair test), released at the same instant by a barrier.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier

import pytest
from sqlalchemy import inspect, text

from goliat_monitor.db import migrate
from goliat_monitor.db.connections import make_engine
from goliat_monitor.db.tables import metadata

pytestmark = pytest.mark.postgres

REPLICAS = 4


def _replica_upgrade(url: str, barrier: Barrier) -> None:
    engine = make_engine(url)
    with engine.connect():  # connected before the barrier, so all of them start the upgrade at once
        pass
    barrier.wait(timeout=60)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()


def test_replicas_starting_together_all_migrate_a_fresh_database(empty_pg_url: str) -> None:
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(REPLICAS)
    replicas = [spawn.Process(target=_replica_upgrade, args=(empty_pg_url, barrier)) for _ in range(REPLICAS)]
    for replica in replicas:
        replica.start()
    for replica in replicas:
        replica.join(timeout=90)

    assert [replica.exitcode for replica in replicas] == [0] * REPLICAS
    engine = make_engine(empty_pg_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert versions == [migrate.head_revision()]  # one row: migrated once
        assert set(inspect(engine).get_table_names()) == {*metadata.tables, "alembic_version"}
    finally:
        engine.dispose()


ADVISORY_LOCKS_HERE = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def test_the_lock_is_released_before_its_connection_returns_to_the_pool(empty_pg_url: str) -> None:
    engine = make_engine(empty_pg_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:  # the pool still holds the lock's connection, open
            assert conn.execute(ADVISORY_LOCKS_HERE).scalar() == 0
    finally:
        engine.dispose()
