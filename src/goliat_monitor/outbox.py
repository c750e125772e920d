"""Where formed messages wait for the sender: in memory, or in a SQLite spool that survives a crash.

Standard library and ``delivery.py`` only, so that ``bridge.py``, ``delivery.py`` and this file can
be copied side by side into a GOLIAT checkout (see the README). Waiting is a concept of its own:
``delivery.py`` decides what a message becomes and what an answer means, ``bridge.py`` and the
agent talk HTTP, and what lives here only holds formed messages, in order, until the sender has
delivered or dropped them:

* `Spool`: the durable, ordered outbox on SQLite, shared by the bridge and the agent;
* `Envelope`: a formed gui-update, whose bytes never change between retries;
* `Outbox` and `open_outbox`: the bridge's two ways to wait (a bounded deque, or write-through to
  a `Spool`) behind one interface, reporting what they drop to the bridge's `Tally`.
"""

from __future__ import annotations

import abc
import json
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING or __package__:  # in goliat_monitor, or copied into any package beside delivery.py
    from . import delivery
else:  # copied beside delivery.py as top-level modules
    import delivery

__all__ = [
    "GUI_UPDATE",
    "SCHEMA_VERSION",
    "Envelope",
    "Outbox",
    "Spool",
    "SpoolClosedError",
    "SpooledMessage",
    "Tally",
    "open_outbox",
]

GUI_UPDATE = "gui-update"
"""The spool `kind` of a gui-update body."""

_READAHEAD = 256  # spooled messages the sender holds in memory at once
_ACK_EVERY = 64  # spool acknowledgements batched into one commit
_WARN_EVERY_S = 10.0  # repeated warnings (drops, outages) are logged at most this often
_TIMED_OUT = "not delivered before stop() timed out"


# -- the durable outbox ----------------------------------------------------------------------------
#
# Durability: the database runs in WAL mode. With ``synchronous="NORMAL"`` (the default) a commit
# is written to the WAL file but not fsynced, so every append that has returned survives a killed
# *process* (the OS still holds the pages); a power cut or kernel crash can lose the last
# transactions (never corrupt the file). ``synchronous="FULL"`` fsyncs the WAL on every commit and
# survives power loss too, at the price of one fsync per append call. Either way, batch with
# `append_many` and acknowledge in batches: a commit is the unit of cost.
#
# Delivery is at least once: a message sent but not yet acknowledged when the process dies is
# peeked again after reopening, so every payload carries an id the receiver deduplicates by.

SCHEMA_VERSION = 1
_ACK_CHUNK = 500  # ids per DELETE statement: well under SQLite's bound-variable limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    -- AUTOINCREMENT: ids are never reused, even after the table empties, so a stale ack for
    -- an old id can never delete a newer message.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
)
"""


class SpoolClosedError(RuntimeError):
    """Raised when a closed spool is used (a bug in the caller, not an I/O problem)."""


@dataclass(frozen=True, slots=True)
class SpooledMessage:
    """One message waiting in the spool; `id` orders messages and is what `ack` takes."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    created_at: float


class Spool:
    """Ordered, crash-safe FIFO of JSON payloads, safe to share between threads.

    One connection guarded by one lock: the spool's callers are a producer and a sender, so
    contention is low and a single writer avoids SQLITE_BUSY between our own threads.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout_ms: int = 5000,
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so each call is exactly one
        # transaction and nothing stays open between calls.
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
        )
        try:
            self._setup(synchronous, busy_timeout_ms)
        except BaseException:
            self._conn.close()
            self._conn = None
            raise

    def _setup(self, synchronous: str, busy_timeout_ms: int) -> None:
        conn = self._require()
        # busy_timeout: another process (e.g. a previous agent still exiting) may hold the
        # write lock for a moment; wait instead of failing.
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = _enable_wal(conn, busy_timeout_ms / 1000)
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"spool {self.path}: cannot enable WAL (got {mode})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"spool {self.path} has schema version {version}, newer than {SCHEMA_VERSION}"
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        # Kept in memory so depth() is O(1); COUNT(*) scans the whole table.
        self._depth: int = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SpoolClosedError(f"spool {self.path} is closed")
        return self._conn

    def append(self, kind: str, payload: dict[str, Any]) -> int:
        """Store one message durably and return its id (ids grow in insertion order)."""
        return self.append_many([(kind, payload)])[0]

    def append_many(self, items: Iterable[tuple[str, dict[str, Any]]]) -> list[int]:
        """Store several messages in one transaction (one commit, so much cheaper than N appends).

        Payloads are JSON-encoded before the transaction starts, so a payload that cannot be
        encoded raises TypeError/ValueError and nothing of the call is stored.
        """
        now = time.time()
        rows = [(kind, json.dumps(payload, separators=(",", ":")), now) for kind, payload in items]
        if not rows:
            return []
        with self._lock:
            conn = self._require()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT INTO outbox (kind, payload, created_at) VALUES (?, ?, ?)", rows)
                last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._depth += len(rows)
        # We held the write lock for the whole transaction, so the ids are consecutive.
        return list(range(last - len(rows) + 1, last + 1))

    def peek(self, limit: int = 100) -> list[SpooledMessage]:
        """The oldest `limit` messages not yet acknowledged, oldest first; removes nothing."""
        with self._lock:
            rows = (
                self._require()
                .execute(
                    "SELECT id, kind, payload, attempts, created_at FROM outbox ORDER BY id LIMIT ?",
                    (max(0, int(limit)),),
                )
                .fetchall()
            )
        return [SpooledMessage(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]

    def ack(self, ids: Iterable[int]) -> int:
        """Delete delivered messages; unknown or already acknowledged ids are ignored.

        Returns how many rows were deleted.
        """
        id_list = [int(i) for i in ids]
        if not id_list:
            return 0
        return self._delete_where_id_in(id_list)

    def record_attempt(self, ids: Iterable[int]) -> None:
        """Count a failed delivery attempt (kept for diagnostics; it survives restarts)."""
        id_list = [int(i) for i in ids]
        if not id_list:
            return
        with self._lock:
            conn = self._require()
            conn.execute("BEGIN IMMEDIATE")
            try:
                for chunk in _chunks(id_list, _ACK_CHUNK):
                    marks = ",".join("?" * len(chunk))
                    conn.execute(f"UPDATE outbox SET attempts = attempts + 1 WHERE id IN ({marks})", chunk)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def drop_oldest(self, count: int, *, after_id: int = 0) -> int:
        """Delete the `count` oldest messages with id > `after_id`, to keep the spool bounded.

        `after_id` lets a sender protect the messages it has already read and may be sending.
        Returns how many were deleted.
        """
        if count <= 0:
            return 0
        with self._lock:
            conn = self._require()
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after_id, count)
                )
            ]
            return self._delete_locked(conn, ids)

    def _delete_where_id_in(self, ids: Sequence[int]) -> int:
        with self._lock:
            return self._delete_locked(self._require(), ids)

    def _delete_locked(self, conn: sqlite3.Connection, ids: Sequence[int]) -> int:
        if not ids:
            return 0
        deleted = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            for chunk in _chunks(ids, _ACK_CHUNK):
                marks = ",".join("?" * len(chunk))
                deleted += conn.execute(f"DELETE FROM outbox WHERE id IN ({marks})", chunk).rowcount
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._depth -= deleted
        return deleted

    def depth(self) -> int:
        """How many messages are waiting: counted at open, then kept by this object (O(1)).

        Writes by another process to the same file are not seen; one owner per file at a time.
        """
        with self._lock:
            self._require()
            return self._depth

    @property
    def closed(self) -> bool:
        return self._conn is None

    def close(self) -> None:
        """Close the connection; safe to call twice. Closing checkpoints the WAL into the file."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else f"depth={self._depth}"
        return f"Spool({self.path!r}, {state})"


def _enable_wal(conn: sqlite3.Connection, wait_s: float) -> str:
    """Switch a spool file to WAL, waiting while another process holds it.

    A new file starts in rollback-journal mode, and switching needs the file to itself: when two
    processes open a new spool at once (a bridge and an agent, or a reader), SQLite answers
    "database is locked" at once instead of calling the busy handler, so wait here instead.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- the bridge's outbox: formed messages, their counters, and where they wait ---------------------


@dataclass(slots=True)
class Envelope:
    """A formed gui-update: its JSON body is final, so every retry sends the same bytes."""

    data: bytes
    message_id: str
    msg_type: str
    spool_id: int | None = None


class Tally:
    """The bridge's counters and rate-limited warnings, shared by its threads and outbox.

    Everything is logged through `logger`, the bridge's own, so what the outbox reports reads as
    the bridge's whichever file its code lives in.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.sent = 0
        self.dropped = 0
        self.rejected = 0
        self.retries = 0
        self.screenshots_sent = 0
        self._lock = threading.Lock()
        self._last_warning: dict[str, float] = {}

    def count(self, name: str, amount: int = 1) -> int:
        with self._lock:
            total: int = getattr(self, name) + amount
            setattr(self, name, total)
            return total

    def note_dropped(self, count: int, reason: str, *, force_log: bool = False) -> None:
        total = self.count("dropped", count)
        fmt, args = "bridge: dropped %d message(s): %s (%d in total)", (count, reason, total)
        if force_log:
            self.logger.warning(fmt, *args)
        else:
            self.warn("dropped", fmt, *args)

    def note_rejected(self, reason: str) -> None:
        self.count("rejected")
        self.logger.warning("bridge: message rejected, not retried: %s", reason)

    def warn(self, key: str, fmt: str, *args: Any) -> None:
        """Log a warning that could repeat many times per second at most every few seconds."""
        now = time.monotonic()
        last = self._last_warning.get(key)
        if last is None or now - last >= _WARN_EVERY_S:
            self._last_warning[key] = now
            self.logger.warning(fmt, *args)
        else:
            self.logger.debug(fmt, *args)


class Outbox(abc.ABC):
    """Formed messages waiting for the sender; memory and spool modes share this interface.

    The processor calls `put` and, once it is done, `finish_producing`; the sender calls `take`,
    then `done` or `failed` per attempt, and `sender_exit`; stop() calls `close` last.
    """

    def __init__(self, tally: Tally, max_buffer: int) -> None:
        self._tally = tally
        self.max_buffer = max_buffer
        self._cv = threading.Condition()
        self._producing = True

    def finish_producing(self) -> None:
        with self._cv:
            self._producing = False
            self._cv.notify_all()

    @abc.abstractmethod
    def put(self, envelopes: list[Envelope]) -> None:
        """Queue formed messages behind everything before them and wake the sender."""

    @abc.abstractmethod
    def take(self, past_deadline: Callable[[], bool]) -> Envelope | None:
        """The oldest message; None once the processor is done and nothing is left, or at the deadline."""

    @abc.abstractmethod
    def done(self, envelope: Envelope) -> None:
        """The message was delivered or dropped: it is not sent again."""

    @abc.abstractmethod
    def failed(self, envelope: Envelope) -> None:
        """An attempt failed; the message stays at the head of the queue."""

    @abc.abstractmethod
    def depth(self) -> int:
        """Messages waiting or being sent."""

    @abc.abstractmethod
    def sender_exit(self, unsent: Envelope | None) -> None:
        """The sender ends; `unsent` is the message it was still trying to deliver."""

    @abc.abstractmethod
    def close(self, *, sender_running: bool) -> None:
        """Settle what is left at stop(): count it as dropped, or keep it spooled."""


class _MemoryOutbox(Outbox):
    """A bounded deque: past `max_buffer` the oldest messages go (the newest state matters most)."""

    def __init__(self, tally: Tally, max_buffer: int) -> None:
        super().__init__(tally, max_buffer)
        self._queue: deque[Envelope] = deque()
        self._inflight: Envelope | None = None  # counts against max_buffer

    def put(self, envelopes: list[Envelope]) -> None:
        dropped = 0
        with self._cv:
            for envelope in envelopes:
                busy = 1 if self._inflight is not None else 0
                while self._queue and len(self._queue) + busy >= self.max_buffer:
                    self._queue.popleft()
                    dropped += 1
                if len(self._queue) + busy >= self.max_buffer:
                    dropped += 1
                    continue
                self._queue.append(envelope)
            self._cv.notify_all()
        if dropped:
            self._tally.note_dropped(dropped, f"buffer full (max_buffer={self.max_buffer})")

    def take(self, past_deadline: Callable[[], bool]) -> Envelope | None:
        while not past_deadline():
            with self._cv:
                if self._queue:
                    self._inflight = self._queue.popleft()
                    return self._inflight
                if not self._producing:
                    return None
                self._cv.wait(0.5)
        return None

    def done(self, envelope: Envelope) -> None:
        self._inflight = None

    def failed(self, envelope: Envelope) -> None:
        """Nothing to record: an attempt count in memory would die with the process anyway."""

    def depth(self) -> int:
        return len(self._queue) + (1 if self._inflight is not None else 0)

    def sender_exit(self, unsent: Envelope | None) -> None:
        if unsent is not None:
            self._inflight = None
            self._tally.note_dropped(1, _TIMED_OUT, force_log=True)

    def close(self, *, sender_running: bool) -> None:
        with self._cv:
            left = len(self._queue)
            self._queue.clear()
        if left:
            self._tally.note_dropped(left, _TIMED_OUT, force_log=True)


class _SpoolOutbox(Outbox):
    """Write-through to a `Spool`: what is not delivered by stop() waits for the next run."""

    def __init__(self, tally: Tally, max_buffer: int, spool: Spool, max_spooled: int) -> None:
        super().__init__(tally, max_buffer)
        self._spool = spool
        self._max_spooled = max_spooled
        self._new_work = False
        self._readahead: deque[Envelope] = deque()
        self._readahead_hi = 0  # highest spool id the sender has read; protected from trimming
        self._acks: list[int] = []
        self._close_lock = threading.Lock()
        self._sender_exited = False
        self._sender_closes = False

    def put(self, envelopes: list[Envelope]) -> None:
        try:
            over = self._spool.depth() + len(envelopes) - self._max_spooled
            if over > 0:
                trimmed = self._spool.drop_oldest(over, after_id=self._readahead_hi)
                cut = min(len(envelopes), over - trimmed)  # the rest is being sent: drop oldest new
                del envelopes[:cut]
                self._tally.note_dropped(trimmed + cut, f"spool full (max_spooled={self._max_spooled})")
            self._spool.append_many((GUI_UPDATE, json.loads(env.data)) for env in envelopes)
        except Exception as exc:
            self._tally.note_dropped(len(envelopes), f"spool write failed: {exc!r}", force_log=True)
            return
        with self._cv:
            self._new_work = True
            self._cv.notify_all()

    def take(self, past_deadline: Callable[[], bool]) -> Envelope | None:
        while not past_deadline():
            if self._readahead:
                return self._readahead.popleft()
            self._flush_acks()  # before peeking, or acknowledged rows would be read again
            with self._cv:
                self._new_work = False
            try:
                rows = self._spool.peek(min(self.max_buffer, _READAHEAD))
            except Exception as exc:
                self._tally.warn("spool-read", "bridge: cannot read the spool: %r", exc)
                with self._cv:
                    self._cv.wait(1.0)
                continue
            for row in rows:
                self._read(row)
            if self._readahead:
                continue
            with self._cv:
                if not self._producing and not self._new_work:
                    return None
                if not self._new_work:
                    self._cv.wait(0.5)
        return None

    def _read(self, row: SpooledMessage) -> None:
        self._readahead_hi = max(self._readahead_hi, row.id)
        message = row.payload.get("message")
        if not isinstance(message, dict):  # not ours: never send it, never block on it
            self._tally.note_rejected(f"spooled row {row.id} is not a gui-update body")
            self._acks.append(row.id)
            return
        data = delivery.encode_json(row.payload)
        self._readahead.append(
            Envelope(data, str(row.payload.get("messageId", "")), str(message.get("type", "")), row.id)
        )

    def done(self, envelope: Envelope) -> None:
        assert envelope.spool_id is not None
        self._acks.append(envelope.spool_id)
        if len(self._acks) >= _ACK_EVERY:
            self._flush_acks()

    def failed(self, envelope: Envelope) -> None:
        assert envelope.spool_id is not None
        try:
            self._spool.record_attempt([envelope.spool_id])
        except Exception:
            self._tally.logger.debug("bridge: could not record a failed attempt", exc_info=True)

    def _flush_acks(self) -> None:
        """Commit acknowledgements; if that fails they are resent later (the server dedupes)."""
        if self._acks:
            try:
                self._spool.ack(self._acks)
            except Exception as exc:
                self._tally.warn("spool-ack", "bridge: cannot acknowledge in the spool: %r", exc)
            self._acks = []

    def depth(self) -> int:
        try:
            return self._spool.depth() - len(self._acks)
        except Exception:
            return 0

    def sender_exit(self, unsent: Envelope | None) -> None:
        self._flush_acks()
        with self._close_lock:
            self._sender_exited = True
            if self._sender_closes:
                self._close_spool()

    def close(self, *, sender_running: bool) -> None:
        left = self.depth()
        with self._close_lock:
            if sender_running and not self._sender_exited:
                self._sender_closes = True  # mid-request: it acknowledges, then closes the spool
            else:
                self._close_spool()
        if left:
            self._tally.logger.info(
                "bridge stopped with %d message(s) kept in the spool for the next run", left
            )

    def _close_spool(self) -> None:
        try:
            self._spool.close()
        except Exception:
            self._tally.logger.exception("bridge: closing the spool failed")


def open_outbox(tally: Tally, max_buffer: int, spool_path: str | None, max_spooled: int) -> Outbox:
    """The outbox `spool_path` asks for; in memory when there is none or it cannot be opened."""
    if spool_path is None:
        return _MemoryOutbox(tally, max_buffer)
    try:
        spool = Spool(spool_path)
    except Exception:
        tally.logger.exception("bridge: cannot open spool %s; buffering in memory only", spool_path)
        return _MemoryOutbox(tally, max_buffer)
    if spool.depth():
        tally.logger.info(
            "bridge: %d message(s) from an earlier run in %s go first", spool.depth(), spool_path
        )
    return _SpoolOutbox(tally, max_buffer, spool, max_spooled)
