"""Connections and transactions, the same way on SQLite and PostgreSQL.

Writes go through `Database.write`: a few writer threads each take every write that is waiting,
run each in its own savepoint, and commit them together (group commit). One slow fsync then serves
a whole burst of GOLIAT messages, and on SQLite there is exactly one writer, so `database is locked`
never happens inside the server. A write that fails rolls back to its savepoint and changes nothing,
while the others in its group still commit. Reads run on a bounded thread pool with their own
connections (WAL lets them proceed while a write is in progress).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_GROUP = 256
"""Most writes committed in one transaction; bounds the latency one commit adds to the next."""

CHECKPOINT_INTERVAL_S = 0.25
"""How often the SQLite checkpointer copies committed pages from the WAL into the database file."""

RETRIES = 4
"""Attempts for a write that hit a unique-key race or a deadlock with another writer or replica."""

# PostgreSQL SQLSTATEs worth a retry: serialization failure, deadlock, unique violation (a concurrent
# first message created the same worker session).
_RETRYABLE_PGCODES = {"40001", "40P01", "23505"}


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    if isinstance(exc, OperationalError | DBAPIError):
        code = getattr(getattr(exc, "orig", None), "sqlstate", None)
        return code in _RETRYABLE_PGCODES
    return False


@dataclass
class _Write:
    """One queued write and whoever waits for it: a thread (`future`) or an event loop (`waiter`)."""

    fn: Callable[[Connection], Any]
    future: concurrent.futures.Future[Any] | None = None
    waiter: asyncio.Future[Any] | None = None

    def settle(self, ok: bool, value: Any) -> None:
        """Thread side only: async waiters are settled in `_wake_loops`, all at once."""
        if self.future is not None and not self.future.done():
            if ok:
                self.future.set_result(value)
            else:
                self.future.set_exception(value)


def _settle_waiters(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    """Runs on the event loop: hand every waiting request its write's outcome."""
    for waiter, ok, value in outcomes:
        if waiter.done():  # the request was cancelled (client gone); the write still happened
            continue
        if ok:
            waiter.set_result(value)
        else:
            waiter.set_exception(value)


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine with the per-database settings this server relies on."""
    if url.startswith("sqlite"):
        is_memory = ":memory:" in url or url in ("sqlite://", "sqlite:///")
        if is_memory:
            engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=NullPool)
        else:
            # Enough pooled connections for every reader and writer thread: a connection made
            # past the pool is opened, set up with PRAGMAs and closed again on every request.
            engine = create_engine(
                url,
                connect_args={"check_same_thread": False, "timeout": 30},
                pool_size=pool_size,
                max_overflow=pool_size,
            )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers never block the writer and vice versa.
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash; only a power loss can drop the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # A second server process or a CLI command may hold the write lock for a moment.
        cursor.execute("PRAGMA busy_timeout=30000")
        # A WAL file left behind by a checkpoint is cut back to this size instead of keeping its peak.
        cursor.execute("PRAGMA journal_size_limit=67108864")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the lock up front so a transaction never fails half-way on an upgrade.
        mode = "IMMEDIATE" if conn.get_execution_options().get("sqlite_immediate") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """The one way the server talks to its database."""

    def __init__(self, url: str, *, write_threads: int = 0, read_threads: int = 8) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if write_threads <= 0:
            write_threads = 1 if self.is_sqlite else 4
        if self.is_sqlite:
            write_threads = 1
        self.engine = make_engine(url, pool_size=write_threads + read_threads)
        self._stopping = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if self.is_sqlite and ":memory:" not in url and url not in ("sqlite://", "sqlite:///"):
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="db-checkpointer", daemon=True
            )
            self._checkpointer.start()
        self._read_limiter = anyio.CapacityLimiter(read_threads)
        self._queues: list[queue.SimpleQueue[_Write | None]] = []
        self._threads: list[threading.Thread] = []
        for number in range(write_threads):
            q: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
            thread = threading.Thread(
                target=self._write_loop, args=(q,), name=f"db-writer-{number}", daemon=True
            )
            self._queues.append(q)
            self._threads.append(thread)
            thread.start()

    # -- writes -------------------------------------------------------------------------------

    def _enqueue(self, item: _Write, key: str | None) -> None:
        if not self._threads:
            raise RuntimeError("database is closed")
        index = zlib.crc32(key.encode()) % len(self._queues) if key else 0
        self._queues[index].put(item)

    def enqueue(self, fn: Callable[[Connection], T], *, key: str | None = None) -> asyncio.Future[T]:
        """Queue a write now, from the event loop; the future settles once it is committed.

        Writes with the same `key` run in one thread, in the order they were queued. A writer wakes
        the loop once per committed group, not once per write.
        """
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._enqueue(_Write(fn, waiter=waiter), key)
        return waiter

    async def write(self, fn: Callable[[Connection], T], *, key: str | None = None) -> T:
        """Run `fn(connection)` in a write transaction; returns once it is committed."""
        return await self.enqueue(fn, key=key)

    def write_sync(self, fn: Callable[[Connection], T], *, key: str | None = None) -> T:
        """`write` for code that runs outside the event loop (CLI, background threads)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._enqueue(_Write(fn, future=future), key)
        return future.result()

    def _write_loop(self, q: queue.SimpleQueue[_Write | None]) -> None:
        conn: Connection | None = None
        try:
            while True:
                first = q.get()
                if first is None:
                    return
                group = [first]
                stop = False
                while len(group) < MAX_GROUP:
                    try:
                        item = q.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    group.append(item)
                if conn is None or conn.closed or conn.invalidated:
                    conn = self._writer_connection()
                self._commit_group(conn, group)
                if stop:
                    return
        finally:
            if conn is not None:
                conn.close()

    def _writer_connection(self) -> Connection:
        conn = self.engine.connect().execution_options(sqlite_immediate=True)
        if self._checkpointer is not None:
            # The checkpointer thread does this connection's checkpoints. Left to itself, SQLite
            # checkpoints inside whichever commit crosses 1,000 WAL pages: that commit then waits
            # for two fsyncs (tens of ms here) while every GOLIAT message behind it queues up.
            driver = conn.connection.driver_connection
            assert driver is not None
            driver.execute("PRAGMA wal_autocheckpoint=0")  # outside any transaction
        return conn

    def _checkpoint_loop(self) -> None:
        """Copy the WAL into the database file beside the writer, never inside one of its commits.

        PASSIVE checkpoints take no lock a writer or a reader waits for; pages a reader still needs
        stay in the WAL until the next round.
        """
        conn: Any = None
        try:
            while not self._stopping.wait(CHECKPOINT_INTERVAL_S):
                try:
                    if conn is None:
                        conn = self.engine.raw_connection()
                    conn.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except Exception:  # a busy or vanished database file must not end the thread
                    log.warning("WAL checkpoint failed; retrying", exc_info=True)
                    if conn is not None:
                        conn.invalidate()
                        conn = None
        finally:
            if conn is not None:
                conn.close()

    def _commit_group(self, conn: Connection, group: list[_Write]) -> None:
        outcomes: list[tuple[_Write, bool, Any]] = []
        try:
            with conn.begin():
                # Savepoints through the driver's cursor: SQLAlchemy's own cost ~200 µs each.
                dbapi = conn.connection.driver_connection
                assert dbapi is not None
                cursor = dbapi.cursor()
                for item in group:
                    outcomes.append((item, *self._run_in_savepoint(conn, cursor, item)))
        except Exception as exc:  # the commit itself failed: nothing in the group was stored
            log.exception("write group of %d failed to commit", len(group))
            if conn.invalidated:
                conn.close()
            outcomes = [(item, False, exc) for item in group]
        self._wake_loops(outcomes)

    @staticmethod
    def _wake_loops(outcomes: list[tuple[_Write, bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for item, ok, value in outcomes:
            if item.waiter is None:
                item.settle(ok, value)
            else:
                by_loop.setdefault(item.waiter.get_loop(), []).append((item.waiter, ok, value))
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop closed while its writes were committing
                loop.call_soon_threadsafe(_settle_waiters, settled)

    @staticmethod
    def _run_in_savepoint(conn: Connection, cursor: Any, item: _Write) -> tuple[bool, Any]:
        for attempt in range(RETRIES):
            cursor.execute("SAVEPOINT gm_write")
            try:
                value = item.fn(conn)
            except Exception as exc:
                cursor.execute("ROLLBACK TO SAVEPOINT gm_write")
                cursor.execute("RELEASE SAVEPOINT gm_write")
                if _is_retryable(exc) and attempt < RETRIES - 1:
                    continue
                return False, exc
            cursor.execute("RELEASE SAVEPOINT gm_write")
            return True, value
        raise AssertionError("unreachable")

    # -- reads --------------------------------------------------------------------------------

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn(connection)` in a read transaction on a worker thread."""
        return await anyio.to_thread.run_sync(self.read_sync, fn, limiter=self._read_limiter)

    def read_sync(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.connect() as conn, conn.begin():
            return fn(conn)

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        for q in self._queues:
            q.put(None)
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []
        self._stopping.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=30)
            self._checkpointer = None
        self.engine.dispose()
