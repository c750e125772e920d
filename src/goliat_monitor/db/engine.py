"""Connections and transactions, the same way on SQLite and PostgreSQL.

Writes go through `Database.write`: every write that is waiting runs in its own savepoint and
they commit together (group commit), so one commit serves a whole burst of GOLIAT messages. A write
that fails rolls back to its savepoint and changes nothing, while the others in its group still
commit. Who runs the groups depends on the database:

- SQLite is a library call of a few µs per statement. Its one writer runs on the event loop that
  queued the writes, once per loop iteration. A writer thread would hand the GIL back and forth
  with the loop around every statement; under load each handover waited up to the interpreter's
  5 ms switch interval, and a group of 30 writes took 30 ms instead of 3. Another process holding
  the write lock never blocks the loop: the group is retried a few ms later.
- PostgreSQL statements are network round trips, so a few writer threads do them, sharded by key.

Reads run on a bounded thread pool with their own connections (WAL lets SQLite readers proceed
while a write is in progress).

A PostgreSQL restart, failover or network cut costs only the seconds it lasts: a write or read
that meets a lost connection fails with `DatabaseUnavailable` (503 with Retry-After, so the
bridge and the agent send it again later), the broken connection is dropped, and the next group
gets a fresh one. A writer thread never dies of a database error.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
import typing
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from sqlalchemy import Connection, event
from sqlalchemy.exc import DBAPIError, OperationalError

from goliat_monitor.db import batching
from goliat_monitor.db.connections import checkpoint_until, leave_checkpoints_to_the_checkpointer, make_engine
from goliat_monitor.db.outages import is_connection_lost, is_retryable, is_storage_full, lost
from goliat_monitor.errors import DatabaseUnavailable, InsufficientStorage

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_WRITE_THREADS = 2
"""PostgreSQL writer threads unless configured. Fewer threads make bigger groups, and a group
costs the database a handful of statements whatever its size (`db.batching`): with 4 threads
the database spent 0.4-0.5 ms of CPU per message, with 1-2 threads 0.1-0.2 ms. Two, not one,
so that a slow write (a study's deletion) holds up only the messages that share its thread."""

MAX_GROUP = 256
"""Most writes a PostgreSQL writer thread commits in one transaction."""

LOOP_GROUP = 64
"""Most writes SQLite's loop writer commits at once (~6 ms of the loop's time) before serving I/O."""

LOCK_RETRY_S = 0.005
LOCK_WAIT_S = 30.0
"""How often and how long SQLite's loop writer tries again while another connection holds the lock."""

CHECKPOINT_INTERVAL_S = 0.25
"""How often the SQLite checkpointer copies committed pages from the WAL into the database file."""

RETRIES = 4
"""Attempts for a write that hit a unique-key race or a deadlock with another writer or replica."""

RECONNECT_S = 0.5
"""How long a PostgreSQL writer thread that could not connect fails its writes at once before it
tries again: while the database is down, requests get their 503 without waiting for a connect."""

CLOSE_TIMEOUT_S = 2.0
"""How long `Database.close` waits for the writer threads to commit or fail what is queued."""


def _unavailable(cause: BaseException | None) -> DatabaseUnavailable:
    error = DatabaseUnavailable()
    error.__cause__ = cause
    return error


Prepare = tuple[Callable[[Connection, list[Any]], None], Any]
"""A read a group's writes can share: `(fn, arg)`, `fn(conn, [arg, ...])` runs once per group."""


@dataclass
class _Write:
    """One queued write and whoever waits for it: a thread (`future`) or an event loop (`waiter`)."""

    fn: Callable[[Connection], Any]
    future: concurrent.futures.Future[Any] | None = None
    waiter: asyncio.Future[Any] | None = None
    prepare: Prepare | None = None

    def settle(self, ok: bool, value: Any) -> None:
        """Thread side only: async waiters are settled in `_wake_loops`, all at once."""
        if self.future is not None and not self.future.done():
            if ok:
                self.future.set_result(value)
            else:
                self.future.set_exception(_raised(value))


def _raised(exc: BaseException) -> BaseException:
    """What a failed write raises: a full disk as `InsufficientStorage` (507), else the error itself."""
    if is_storage_full(exc):
        error = InsufficientStorage("database")
        error.__cause__ = exc
        return error
    return exc


def _settle_waiters(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    """Runs on the event loop: hand every waiting request its write's outcome."""
    for waiter, ok, value in outcomes:
        if waiter.done():  # the request was cancelled (client gone); the write still happened
            continue
        if ok:
            waiter.set_result(value)
        else:
            waiter.set_exception(_raised(value))


class Database:
    """The one way the server talks to its database."""

    def __init__(self, url: str, *, write_threads: int = 0, read_threads: int = 8) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if write_threads <= 0:
            write_threads = DEFAULT_WRITE_THREADS
        self.engine = make_engine(url, pool_size=(2 if self.is_sqlite else write_threads) + read_threads)
        event.listen(self.engine, "checkin", self._close_if_late)
        self._read_limiter = anyio.CapacityLimiter(read_threads)
        self._closed = False
        self._stopping = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._loop_writer: _LoopWriter | None = None
        self._queues: list[queue.SimpleQueue[list[_Write] | None]] = []
        # Writes queued during one loop iteration, per loop and writer queue: handed over at its end.
        self._staged: dict[asyncio.AbstractEventLoop, dict[int, list[_Write]]] = {}
        self._threads: list[threading.Thread] = []
        if self.is_sqlite:
            self._loop_writer = _LoopWriter(self)
            if ":memory:" not in url and url not in ("sqlite://", "sqlite:///"):
                event.listen(self.engine, "connect", leave_checkpoints_to_the_checkpointer)
                self._checkpointer = threading.Thread(
                    target=checkpoint_until,
                    args=(self.engine, self._stopping, CHECKPOINT_INTERVAL_S),
                    name="db-checkpointer",
                    daemon=True,
                )
                self._checkpointer.start()
            return
        for number in range(write_threads):
            q: queue.SimpleQueue[list[_Write] | None] = queue.SimpleQueue()
            thread = threading.Thread(
                target=self._write_loop, args=(q,), name=f"db-writer-{number}", daemon=True
            )
            self._queues.append(q)
            self._threads.append(thread)
            thread.start()

    @property
    def closed(self) -> bool:
        """`close` was called: writes are no longer taken, and queued ones no longer wait for the database."""
        return self._closed

    # -- writes -------------------------------------------------------------------------------

    def enqueue(
        self, fn: Callable[[Connection], T], *, key: str | None = None, prepare: Prepare | None = None
    ) -> asyncio.Future[T]:
        """Queue a write now, from the event loop; the future settles once it is committed.

        Writes with the same `key` are committed in the order they were queued (on SQLite all
        writes are). `prepare` names a read the group's writes share (see `db.batching`). Call
        it from the event loop only.
        """
        if self._closed:
            raise RuntimeError("database is closed")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()
        item = _Write(fn, waiter=waiter, prepare=prepare)
        if self._loop_writer is not None:
            self._loop_writer.enqueue(item, loop)
            return waiter
        staged = self._staged.get(loop)
        if staged is None:
            staged = self._staged[loop] = {}
            loop.call_soon(self._hand_over, loop)
        staged.setdefault(self._queue_number(key), []).append(item)
        return waiter

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """At the end of a loop iteration, give each writer thread its writes in one piece.

        One wake-up per thread and iteration instead of one per write: each wake-up made the
        thread contend for the GIL with the loop that was still queuing.
        """
        for number, items in self._staged.pop(loop, {}).items():
            self._queues[number].put(items)

    async def write(
        self, fn: Callable[[Connection], T], *, key: str | None = None, prepare: Prepare | None = None
    ) -> T:
        """Run `fn(connection)` in a write transaction; returns once it is committed."""
        return await self.enqueue(fn, key=key, prepare=prepare)

    def write_sync(self, fn: Callable[[Connection], T], *, key: str | None = None) -> T:
        """`write` for code outside the event loop (CLI, tests): commits in the calling thread.

        On SQLite this is a second writer connection; SQLite's lock orders it with the loop's.
        """
        if self._closed:
            raise RuntimeError("database is closed")
        if self._loop_writer is None:
            future: concurrent.futures.Future[T] = concurrent.futures.Future()
            self._queues[self._queue_number(key)].put([_Write(fn, future=future)])
            return future.result()
        with self.engine.connect().execution_options(sqlite_immediate=True) as conn:
            ((_, ok, value),) = _commit_group(conn, [_Write(fn)])
        if not ok:
            raise value
        return typing.cast(T, value)

    def _queue_number(self, key: str | None) -> int:
        return zlib.crc32(key.encode()) % len(self._queues) if key else 0

    def _write_loop(self, q: queue.SimpleQueue[list[_Write] | None]) -> None:
        """A PostgreSQL writer thread: commit whatever is waiting, as one group, until told to stop."""
        writer = _ThreadWriter(self)
        try:
            while True:
                group, stop = _take_group(q)
                if group:
                    _wake_loops(writer.commit(group))
                if stop:
                    return
        finally:
            writer.close()

    # -- reads --------------------------------------------------------------------------------

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn(connection)` in a read transaction on a worker thread."""
        return await anyio.to_thread.run_sync(self.read_sync, fn, limiter=self._read_limiter)

    def read_sync(self, fn: Callable[[Connection], T]) -> T:
        try:
            with self.engine.connect() as conn, conn.begin():
                return fn(conn)
        except Exception as exc:
            if is_connection_lost(exc):
                raise _unavailable(exc) from exc
            raise

    # -- lifecycle ----------------------------------------------------------------------------

    def _close_if_late(self, dbapi_connection: Any, record: Any) -> None:
        """A connection handed back after `close` (a thread shutdown did not wait for) is closed.

        `engine.dispose` closes only the pooled connections: one still checked out would go back
        into a pool nobody holds any more, and stay open until the garbage collector finds it.
        """
        if self._closed and dbapi_connection is not None:
            record.invalidate()

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Commit what is queued, stop the writer and checkpointer threads, close every connection.

        Waits at most `timeout` for the writer threads: with the database gone they fail what is
        queued at once, and a thread stuck on a cut connection is a daemon left to its timeout.
        """
        self._closed = True
        deadline = time.monotonic() + timeout
        for loop in list(self._staged):  # writes queued in a loop iteration that never ended
            self._hand_over(loop)
        for q in self._queues:
            q.put(None)
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("%s did not stop within %.0f s; leaving it", thread.name, timeout)
        self._threads = []
        if self._loop_writer is not None:
            self._loop_writer.close()
        self._stopping.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=30)
            self._checkpointer = None
        self.engine.dispose()


_Outcome = tuple[_Write, bool, Any]


class WriteLockBusy(Exception):
    """Another connection holds SQLite's write lock; nothing of the group ran yet."""


def _is_locked(exc: OperationalError) -> bool:
    return "database is locked" in str(exc.orig) or "database is busy" in str(exc.orig)


def _commit_group(conn: Connection, group: list[_Write]) -> list[_Outcome]:
    """Commit the group's writes together; a write that fails changes nothing and fails alone.

    The writes first run straight through in one transaction. Only when one of them raises is
    that transaction rolled back and the group run again with a savepoint around each write. A
    write that fails is rare, and on PostgreSQL the two savepoint statements were two of the
    ~7 network round trips a GOLIAT message costs.

    Raises `WriteLockBusy` when another connection holds SQLite's write lock (before anything ran),
    and `ConnectionLost` when the connection broke; the caller drops it.
    """
    try:
        return _run_group(conn, group, isolated=False)
    except _WriteFailed as failed:
        cause = failed.__cause__ or failed
        if lost(conn, cause):
            raise ConnectionLost(cause, at_commit=False) from cause
        return _run_group(conn, group, isolated=True)


class _WriteFailed(Exception):
    """A write of a group run without savepoints raised: run the group again, isolated."""


class ConnectionLost(Exception):
    """The connection broke under a group: none of its writes is stored, unless `at_commit`.

    A break before the commit was sent rolled everything back on the server, so the group may run
    again on a new connection; a break during the commit leaves its outcome unknown.
    """

    def __init__(self, cause: BaseException, *, at_commit: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.at_commit = at_commit


def _run_group(conn: Connection, group: list[_Write], *, isolated: bool) -> list[_Outcome]:
    try:
        transaction = conn.begin()
    except DBAPIError as exc:
        if lost(conn, exc):
            raise ConnectionLost(exc, at_commit=False) from exc
        if isinstance(exc, OperationalError) and _is_locked(exc):
            raise WriteLockBusy(str(exc)) from exc
        log.exception("write group of %d could not begin", len(group))
        return [(item, False, exc) for item in group]
    outcomes: list[_Outcome] = []
    committing = False
    try:
        with transaction:
            if isolated:
                # Savepoints through the driver's cursor: SQLAlchemy's own cost ~200 µs each.
                dbapi = conn.connection.driver_connection
                assert dbapi is not None
                cursor = dbapi.cursor()
                for item in group:
                    outcomes.append((item, *_run_in_savepoint(conn, cursor, item)))
            else:
                try:
                    batching.start(conn, group)
                    for item in group:
                        batching.before_write(conn, item)
                        outcomes.append((item, True, item.fn(conn)))
                    batching.flush(conn)  # held statements' errors surface here, before the commit
                except Exception as exc:
                    raise _WriteFailed from exc
            committing = True
    except _WriteFailed:
        raise
    except Exception as exc:  # the commit itself failed: nothing in the group was stored
        if lost(conn, exc):
            raise ConnectionLost(exc, at_commit=committing) from exc
        if is_storage_full(exc):  # answered 507; once there is room the next group commits
            log.warning("write group of %d not stored, the database's disk is full: %s", len(group), exc)
        else:
            log.exception("write group of %d failed to commit", len(group))
        return [(item, False, exc) for item in group]
    finally:
        batching.stop(conn)
    return outcomes


def _run_in_savepoint(conn: Connection, cursor: Any, item: _Write) -> tuple[bool, Any]:
    for attempt in range(RETRIES):
        cursor.execute("SAVEPOINT gm_write")
        try:
            value = item.fn(conn)
        except Exception as exc:
            if is_connection_lost(exc):
                raise  # no savepoint to go back to: the whole group is lost with the connection
            cursor.execute("ROLLBACK TO SAVEPOINT gm_write")
            cursor.execute("RELEASE SAVEPOINT gm_write")
            if is_retryable(exc) and attempt < RETRIES - 1:
                continue
            return False, exc
        cursor.execute("RELEASE SAVEPOINT gm_write")
        return True, value
    raise AssertionError("unreachable")


def _take_group(q: queue.SimpleQueue[list[_Write] | None]) -> tuple[list[_Write], bool]:
    """Wait for writes, then take whatever else is waiting (up to about `MAX_GROUP`); True: stop after."""
    first = q.get()
    if first is None:
        return [], True
    group = list(first)
    while len(group) < MAX_GROUP:
        try:
            items = q.get_nowait()
        except queue.Empty:
            break
        if items is None:
            return group, True
        group.extend(items)
    return group, False


class _ThreadWriter:
    """A PostgreSQL writer thread's connection, and what it does when the database goes away.

    A group that meets a broken connection fails with `DatabaseUnavailable` and the connection is
    dropped; the next group connects afresh. A connection that broke while idle (the database
    restarted between two groups) costs nothing: the group runs again once on a new one. After a
    failed connect, writes fail at once for `RECONNECT_S`, and for good once the database is
    closing, so neither a request nor shutdown waits on a database that is not there.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self._conn: Connection | None = None
        self._connect_after = 0.0
        self._connect_failed = False

    def commit(self, group: list[_Write]) -> list[_Outcome]:
        for attempt in range(2):
            try:
                conn, fresh = self._connection()
            except DatabaseUnavailable as exc:
                return [(item, False, _unavailable(exc.__cause__)) for item in group]
            try:
                return _commit_group(conn, group)
            except ConnectionLost as lost:
                self._drop()
                if fresh or lost.at_commit or attempt:
                    log.warning("lost the database connection; %d write(s) answered 503", len(group))
                    return [(item, False, _unavailable(lost.cause)) for item in group]
            except Exception as exc:  # unforeseen: fail the group, keep the thread, start afresh
                log.exception("write group of %d failed", len(group))
                self._drop()
                return [(item, False, exc) for item in group]
        raise AssertionError("unreachable")

    def _connection(self) -> tuple[Connection, bool]:
        """The thread's connection and whether it is new; `DatabaseUnavailable` if there is none."""
        if self._conn is not None:
            return self._conn, False
        if self._connect_failed and (self._database.closed or time.monotonic() < self._connect_after):
            raise DatabaseUnavailable()
        try:
            self._conn = self._database.engine.connect()
        except Exception as exc:
            if not self._connect_failed:
                log.warning("cannot connect to the database; writes answer 503 until it is back: %s", exc)
            self._connect_failed = True
            self._connect_after = time.monotonic() + RECONNECT_S
            raise _unavailable(exc) from exc
        if self._connect_failed:
            log.info("connected to the database again")
        self._connect_failed = False
        return self._conn, True

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # a connection the database dropped meanwhile
                self._conn.close()
            self._conn = None


def _wake_loops(outcomes: list[_Outcome]) -> None:
    """From a writer thread: settle thread waiters now and each loop's waiters with one wake-up."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for item, ok, value in outcomes:
        if item.waiter is None:
            item.settle(ok, value)
        else:
            by_loop.setdefault(item.waiter.get_loop(), []).append((item.waiter, ok, value))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed while its writes were committing
            loop.call_soon_threadsafe(_settle_waiters, settled)


class _LoopWriter:
    """SQLite's one writer, run on the event loop between the loop's other callbacks.

    Writes queued during one loop iteration are committed as one group in the next; a long queue
    is cut into groups of `LOOP_GROUP` with the loop's I/O in between. When another connection
    holds the write lock (a CLI command, `write_sync`), the group waits `LOCK_RETRY_S` and tries
    again, for up to `LOCK_WAIT_S`, instead of blocking the loop in SQLite's busy handler.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self._pending: collections.deque[_Write] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._conn: Connection | None = None
        self._locked_since: float | None = None

    def enqueue(self, item: _Write, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:  # a new loop (tests run several); an old one's queue moves along
            if self._loop is not None and self._loop.is_running():
                raise RuntimeError(
                    "SQLite writes come from one event loop at a time; use write_sync elsewhere"
                )
            self._loop, self._scheduled = loop, False
        self._pending.append(item)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        count = min(len(self._pending), LOOP_GROUP)
        group = [self._pending.popleft() for _ in range(count)]
        try:
            outcomes = _commit_group(self._connection(), group)
        except WriteLockBusy as exc:
            self._pending.extendleft(reversed(group))
            if self._retry_later(exc):
                return
            outcomes = [(item, False, exc) for item in self._pending]
            self._pending.clear()
        except ConnectionLost as lost:  # a closed or invalidated SQLite connection: open another
            self._drop_connection()
            outcomes = [(item, False, lost.cause) for item in group]
        self._locked_since = None
        here: list[tuple[asyncio.Future[Any], bool, Any]] = []
        elsewhere: list[_Outcome] = []  # thread waiters, or waiters of an earlier loop
        for item, ok, value in outcomes:
            if item.waiter is not None and item.waiter.get_loop() is self._loop:
                here.append((item.waiter, ok, value))
            else:
                elsewhere.append((item, ok, value))
        _settle_waiters(here)
        if elsewhere:
            _wake_loops(elsewhere)
        if self._pending and not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _retry_later(self, exc: WriteLockBusy) -> bool:
        assert self._loop is not None
        now = self._loop.time()
        if self._locked_since is None:
            self._locked_since = now
        if now - self._locked_since > LOCK_WAIT_S:
            log.error("SQLite write lock held elsewhere for %.0f s; failing the waiting writes", LOCK_WAIT_S)
            self._locked_since = None
            return False
        self._scheduled = True
        self._loop.call_later(LOCK_RETRY_S, self._flush)
        return True

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self._database.engine.connect().execution_options(sqlite_immediate=True)
            driver = self._conn.connection.driver_connection
            assert driver is not None
            # Never wait inside SQLite's busy handler on the loop: `_retry_later` waits instead.
            driver.execute("PRAGMA busy_timeout=0")
        return self._conn

    def close(self) -> None:
        """Commit what is still queued (the loop may be gone already), then close the connection."""
        if self._pending:
            group = list(self._pending)
            self._pending.clear()
            try:
                outcomes = _commit_group(self._connection(), group)
            except (WriteLockBusy, ConnectionLost) as exc:
                outcomes = [(item, False, exc) for item in group]
            _wake_loops(outcomes)
        self._drop_connection()

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
