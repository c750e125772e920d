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
import logging
import queue
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_GROUP = 256
"""Most writes committed in one transaction; bounds the latency one commit adds to the next."""

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
    fn: Callable[[Connection], Any]
    future: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)


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

    def submit(
        self, fn: Callable[[Connection], T], *, key: str | None = None
    ) -> concurrent.futures.Future[T]:
        """Queue a write. Writes with the same `key` run in one thread, in the order submitted."""
        if not self._threads:
            raise RuntimeError("database is closed")
        item = _Write(fn)
        index = zlib.crc32(key.encode()) % len(self._queues) if key else 0
        self._queues[index].put(item)
        return item.future

    async def write(self, fn: Callable[[Connection], T], *, key: str | None = None) -> T:
        """Run `fn(connection)` in a write transaction; returns once it is committed."""
        return await asyncio.wrap_future(self.submit(fn, key=key))

    def write_sync(self, fn: Callable[[Connection], T], *, key: str | None = None) -> T:
        return self.submit(fn, key=key).result()

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
                    conn = self.engine.connect().execution_options(sqlite_immediate=True)
                self._commit_group(conn, group)
                if stop:
                    return
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
            for item in group:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        for item, ok, value in outcomes:
            if ok:
                item.future.set_result(value)
            else:
                item.future.set_exception(value)

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
        self.engine.dispose()
