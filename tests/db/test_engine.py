"""The write path: group commit, per-write savepoints, wake-ups, and SQLite's WAL checkpoints."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Connection, text

from goliat_monitor.db import engine
from goliat_monitor.db.engine import Database
from tests.support import wait_for


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'engine.sqlite3'}")
    db.write_sync(lambda conn: conn.exec_driver_sql("CREATE TABLE items (n INTEGER, blob TEXT)"))
    yield db
    db.close()


def count(db: Database) -> int:
    return cast(int, db.read_sync(lambda conn: conn.execute(text("SELECT count(*) FROM items")).scalar_one()))


def test_concurrent_writes_each_settle_with_their_own_outcome(database: Database) -> None:
    """Writes queued together commit together; a failing one rolls back alone and raises alone."""

    def insert(n: int) -> Callable[[Connection], int]:
        def write(conn: Connection) -> int:
            conn.execute(text("INSERT INTO items (n) VALUES (:n)"), {"n": n})
            if n % 10 == 3:
                raise ValueError(f"refused {n}")
            return n

        return write

    async def run() -> list[int | BaseException]:
        queued = [database.enqueue(insert(n), key="same") for n in range(100)]
        return await asyncio.gather(*queued, return_exceptions=True)

    outcomes = asyncio.run(run())
    for n, outcome in enumerate(outcomes):
        if n % 10 == 3:
            assert isinstance(outcome, ValueError) and str(outcome) == f"refused {n}"
        else:
            assert outcome == n
    stored = database.read_sync(
        lambda conn: conn.execute(text("SELECT n FROM items ORDER BY rowid")).scalars().all()
    )
    assert stored == [n for n in range(100) if n % 10 != 3]


def test_a_cancelled_waiter_does_not_undo_or_break_its_write(database: Database) -> None:
    async def run() -> int:
        waiter = database.enqueue(lambda conn: conn.execute(text("INSERT INTO items (n) VALUES (1)")))
        waiter.cancel()  # the client went away before the commit
        return await database.write(
            lambda conn: conn.execute(text("SELECT count(*) FROM items")).scalar_one()
        )

    assert asyncio.run(run()) == 1


def test_writer_leaves_checkpoints_to_the_checkpointer(database: Database, tmp_path: Path) -> None:
    """Commits never wait for a checkpoint's fsyncs, yet the WAL still reaches the database file."""
    autocheckpoint = database.write_sync(
        lambda conn: conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    )
    assert autocheckpoint == 0
    path = tmp_path / "engine.sqlite3"
    before = path.stat().st_size
    payload = "x" * 4000
    for _batch in range(10):
        database.write_sync(
            lambda conn: conn.execute(
                text("INSERT INTO items (n, blob) VALUES (:n, :blob)"),
                [{"n": n, "blob": payload} for n in range(100)],
            )
        )
    # ~4 MB went into the WAL; only a checkpoint copies it into the main file.
    wait_for(
        lambda: path.stat().st_size >= before + 3_000_000,
        timeout=10,
        what="the checkpointer to copy the WAL into the database",
    )
    with sqlite3.connect(path) as plain:
        assert plain.execute("SELECT count(*) FROM items").fetchone() == (1000,)


def test_closing_stops_every_thread(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'closing.sqlite3'}")
    db.write_sync(lambda conn: conn.exec_driver_sql("CREATE TABLE t (n INTEGER)"))
    threads = [*db._threads, db._checkpointer]
    assert all(thread is not None and thread.is_alive() for thread in threads)
    db.close()
    assert not any(thread is not None and thread.is_alive() for thread in threads)
    with pytest.raises(RuntimeError, match="closed"):
        db.write_sync(lambda conn: None)


def test_a_write_lock_held_elsewhere_never_blocks_the_event_loop(database: Database, tmp_path: Path) -> None:
    """SQLite writes run on the loop; while a CLI command holds the lock the loop keeps serving."""
    other = sqlite3.connect(tmp_path / "engine.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO items (n) VALUES (-1)")

    async def run() -> tuple[int, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        write = database.enqueue(lambda conn: conn.execute(text("INSERT INTO items (n) VALUES (1)")).rowcount)
        await asyncio.sleep(0.3)
        assert not write.done()  # waiting for the lock, without blocking the loop
        ticks_while_locked = ticks
        other.execute("COMMIT")
        rowcount = await asyncio.wait_for(write, 5)
        ticking.cancel()
        return ticks_while_locked, rowcount

    ticks_while_locked, rowcount = asyncio.run(run())
    other.close()
    assert ticks_while_locked >= 15  # ~30 possible in 0.3 s; a blocked loop would show 0
    assert rowcount == 1
    assert count(database) == 2


def test_a_write_lock_never_released_fails_the_waiting_writes(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "LOCK_WAIT_S", 0.2)
    other = sqlite3.connect(tmp_path / "engine.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    async def run() -> list[object]:
        queued = [database.enqueue(lambda conn: conn.execute(text("INSERT INTO items (n) VALUES (1)")))]
        queued.append(database.enqueue(lambda conn: conn.execute(text("INSERT INTO items (n) VALUES (2)"))))
        return await asyncio.wait_for(asyncio.gather(*queued, return_exceptions=True), 5)

    outcomes = asyncio.run(run())
    other.execute("ROLLBACK")
    other.close()
    assert all(isinstance(outcome, engine.WriteLockBusy) for outcome in outcomes), outcomes
    assert count(database) == 0


def test_a_long_queue_commits_in_order_in_several_groups(database: Database) -> None:
    def insert(n: int) -> Callable[[Connection], object]:
        return lambda conn: conn.execute(text("INSERT INTO items (n) VALUES (:n)"), {"n": n})

    async def run() -> Sequence[int]:
        queued = [database.enqueue(insert(n)) for n in range(engine.LOOP_GROUP * 3 + 5)]
        await asyncio.gather(*queued)
        return database.read_sync(
            lambda conn: conn.execute(text("SELECT n FROM items ORDER BY rowid")).scalars().all()
        )

    assert asyncio.run(run()) == list(range(engine.LOOP_GROUP * 3 + 5))


def test_closing_commits_what_is_still_queued(tmp_path: Path) -> None:
    path = tmp_path / "queued.sqlite3"
    db = Database(f"sqlite:///{path}")
    db.write_sync(lambda conn: conn.exec_driver_sql("CREATE TABLE t (n INTEGER)"))

    async def queue() -> None:
        db.enqueue(lambda conn: conn.exec_driver_sql("INSERT INTO t VALUES (7)"))

    loop = asyncio.new_event_loop()
    task = loop.create_task(queue())
    loop.call_soon(loop.stop)  # the loop stops right after the task queued its write...
    loop.run_forever()
    assert task.done()
    loop.close()  # ... so the write was never run by the loop
    assert db.read_sync(lambda conn: conn.exec_driver_sql("SELECT count(*) FROM t").scalar()) == 0
    db.close()
    with sqlite3.connect(path) as plain:
        assert plain.execute("SELECT n FROM t").fetchall() == [(7,)]


def test_writes_from_a_second_running_loop_are_refused(database: Database) -> None:
    """One connection, one loop: a second loop must use write_sync instead of racing the first."""
    first = asyncio.new_event_loop()
    thread = threading.Thread(target=first.run_forever, daemon=True)
    thread.start()
    try:

        async def write_one() -> object:
            return await database.write(
                lambda conn: conn.execute(text("INSERT INTO items (n) VALUES (1)")).rowcount
            )

        assert asyncio.run_coroutine_threadsafe(write_one(), first).result(5) == 1
        with pytest.raises(RuntimeError, match="one event loop"):
            asyncio.run(write_one())
        assert (
            database.write_sync(lambda conn: conn.execute(text("INSERT INTO items (n) VALUES (2)")).rowcount)
            == 1
        )
    finally:
        first.call_soon_threadsafe(first.stop)
        thread.join(5)
        first.close()
    assert count(database) == 2


def test_a_connection_handed_back_after_close_is_closed(pg_url: str) -> None:
    """A thread the shutdown did not wait for returns its connection late: it is closed then, not
    left in a disposed pool for the garbage collector (a psycopg ResourceWarning in a later test)."""
    db = Database(pg_url, write_threads=1)
    late = db.engine.connect()
    driver = late.connection.driver_connection
    db.close()
    assert driver is not None and not driver.closed
    late.close()
    assert driver.closed
