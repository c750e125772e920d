"""Retention passes: delete what is older than its kind's setting, a bounded round at a time.

One `Pruner` is one pass over every kind that has a retention (`ServerSettings.retention`), on a
connection of its own, never through the server's writer. Each round is one short transaction
(`db/queries/retention.py`: at most 5,000 rows, one primary-key range); whoever drives the pass
pauses between rounds, so ingest's writes get the database in between. The server's background
loop (`server/services.prune_old_data`) and `goliat-monitor prune` drive the same passes.

On PostgreSQL a pass holds a session advisory lock: while one replica (or the CLI) prunes, the
others skip their pass. SQLite has one server per file, and its write lock orders a CLI's rounds
with the server's writes.

The log search index follows the lines: on SQLite a trigger deletes each indexed line from the
FTS5 table in the same transaction, and PostgreSQL's GIN index drops the rows with them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, text

from goliat_monitor.blobs import BlobStore
from goliat_monitor.db.queries import retention
from goliat_monitor.domain.retention import Kind, RetentionPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")

PAUSE_S = 0.05
"""The pause between two rounds: with rounds of ~10-20 ms, ingest keeps most of SQLite's writer."""

ADVISORY_LOCK = 0x474D_5052_554E  # "GMPRUN": the key every replica's pruning pass locks
"""PostgreSQL session advisory lock held for a whole pass, so one replica prunes at a time."""


@dataclass(frozen=True)
class Step:
    """One committed round: `count` rows of `kind` went (were counted, in a dry run)."""

    kind: Kind
    count: int
    studies: tuple[str, ...] = ()
    """Super studies this round deleted (kind STUDIES), for the live pages."""


@dataclass
class Pruner:
    """One retention pass. Use it as a context manager, then call `next_round` until it is None
    (or iterate `rounds()`); `locked` is False when another replica's pass holds the lock."""

    engine: Engine
    policy: RetentionPolicy
    now: float
    blobs: BlobStore | None = None
    """Where deleted studies' result files are removed (after their round commits)."""
    dry_run: bool = False
    locked: bool = False
    _conn: Connection | None = field(default=None, init=False, repr=False)
    _rounds: Iterator[Step] | None = field(default=None, init=False, repr=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def __enter__(self) -> Pruner:
        self._conn = conn = self.engine.connect()  # set first: `__exit__` closes it whatever follows
        if self.is_sqlite:
            conn = conn.execution_options(sqlite_immediate=not self.dry_run)
            self.locked = True
        elif self.dry_run:
            self.locked = True
        else:
            self.locked = bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK}).scalar()
            )
            conn.commit()
        self._conn = conn
        return self

    def __exit__(self, *_exc: object) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception):  # a broken connection takes its session lock with it
            if conn.in_transaction():
                conn.rollback()
            if self.locked and not self.is_sqlite and not self.dry_run:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK})
                conn.commit()
        conn.close()

    def next_round(self) -> Step | None:
        """Run the next round (one transaction); None once the pass is over."""
        if self._rounds is None:
            self._rounds = self.rounds()
        return next(self._rounds, None)

    def rounds(self) -> Iterator[Step]:
        if not self.locked:
            return
        for kind, cutoff in self.policy.cutoffs(self.now).items():
            if kind is Kind.MESSAGE_IDS:
                yield from self._message_ids(cutoff)
            elif kind is Kind.STUDIES:
                yield from self._studies(cutoff)
            else:
                for table in retention.TABLES[kind]:
                    yield from self._rows(kind, table, cutoff)

    def _round(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(conn, *args, **kwargs)` in one transaction of its own."""
        assert self._conn is not None, "use the Pruner as a context manager"
        with self._conn.begin():
            return fn(self._conn, *args, **kwargs)

    def _rows(self, kind: Kind, table: Table, cutoff: float) -> Iterator[Step]:
        limit = (
            retention.SQLITE_LOG_ROUND_ROWS if kind is Kind.LOGS and self.is_sqlite else retention.ROUND_ROWS
        )
        after: int | None = 0
        while after is not None:
            done = self._round(
                retention.prune_rows, table, cutoff, after_id=after, limit=limit, dry_run=self.dry_run
            )
            after = done.last_id
            if done.count or after is None:
                yield Step(kind, done.count)

    def _message_ids(self, cutoff: float) -> Iterator[Step]:
        if self.dry_run:
            yield Step(Kind.MESSAGE_IDS, self._round(retention.count_message_ids, cutoff))
            return
        while True:
            forgotten = self._round(retention.prune_message_ids, cutoff)
            yield Step(Kind.MESSAGE_IDS, forgotten)
            if forgotten < retention.ROUND_ROWS:
                return

    def _studies(self, cutoff: float) -> Iterator[Step]:
        found = self._round(retention.finished_studies, cutoff)
        if self.dry_run:
            yield Step(Kind.STUDIES, len(found), tuple(found))
            return
        for study_id in found:
            assignment_ids = self._round(retention.delete_finished_study, study_id, cutoff)
            if assignment_ids is None:  # retried or changed since the pass began: it stays
                continue
            if self.blobs is not None:
                for assignment_id in assignment_ids:
                    self.blobs.delete_prefix(f"results/{assignment_id}")
            yield Step(Kind.STUDIES, 1, (study_id,))


def count(engine: Engine, policy: RetentionPolicy, now: float) -> dict[Kind, int]:
    """What a pass would delete now, per kind that has a retention (a dry-run pass)."""
    totals = dict.fromkeys(policy.cutoffs(now), 0)
    with Pruner(engine, policy, now, dry_run=True) as pruner:
        for step in pruner.rounds():
            totals[step.kind] += step.count
    return totals
