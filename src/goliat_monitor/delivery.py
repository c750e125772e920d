"""A durable, ordered outbox on SQLite, so nothing waiting for the server is lost on a crash.

Standard library only (the bridge that uses it must stay droppable into GOLIAT).

Durability: the database runs in WAL mode. With ``synchronous="NORMAL"`` (the default) a commit is
written to the WAL file but not fsynced, so every append that has returned survives a killed
*process* (the OS still holds the pages); a power cut or kernel crash can lose the last
transactions (never corrupt the file). ``synchronous="FULL"`` fsyncs the WAL on every commit and
survives power loss too, at the price of one fsync per append call (see ``bench/spool.py``).
Either way, batch with `append_many` and acknowledge in batches: a commit is the unit of cost.

Delivery is at least once: a message sent but not yet acknowledged when the process dies is
peeked again after reopening, so consumers give each payload an id the receiver can deduplicate.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["SCHEMA_VERSION", "Spool", "SpoolClosedError", "SpooledMessage"]

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
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
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


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
