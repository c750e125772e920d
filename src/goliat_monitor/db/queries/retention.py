"""Retention: what is old enough to go, and one bounded round of deleting it.

Every round is one short transaction over one primary-key range of at most `limit` rows, so it
holds SQLite's write lock for a few milliseconds and touches no row ingest is writing; `pruning.py`
runs the rounds with a pause in between. Nothing that belongs to an unfinished super study is
deleted (see `protected`).

Rows are walked in the order they were stored (id order), which is their time order up to
clocks and redeliveries: a walk stops at the first range with no row older than the cutoff, so a
row stored long after its own time waits until the rows stored before it are old too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Table, delete, func, or_, select

from goliat_monitor.db.queries import ingest
from goliat_monitor.db.queries.studies import delete_super_study, study_summaries
from goliat_monitor.db.tables import (
    assignment_events,
    assignments,
    log_lines,
    received_messages,
    super_studies,
    timing_samples,
    worker_messages,
    worker_samples,
)
from goliat_monitor.domain.models import AssignmentStatus
from goliat_monitor.domain.retention import Kind, is_finished

ROUND_ROWS = 5_000
"""Most rows one round deletes (or, in a dry run, counts)."""

SQLITE_LOG_ROUND_ROWS = 100
"""Log lines per round on SQLite: each deleted line is also deleted from the FTS5 index by a
trigger, and FTS5 merges its segments inside whichever round fills a level, so the round size
bounds how long ingest waits for the write lock. `bench/retention.py` at 703 msg/s over 1,000,000
lines: 500 lines a round gave ingest p99 57 ms (12.8 ms without pruning) at 8,100 lines/s; 100 give
27 ms (6.9 ms without) at 1,800 lines/s, which still prunes a day of a 100-worker campaign's logs
in well under an hour. A shorter pause instead (100 lines, 20 ms) was back at 52 ms."""

TABLES: dict[Kind, tuple[Table, ...]] = {
    Kind.LOGS: (log_lines,),
    Kind.SAMPLES: (worker_samples,),
    Kind.EVENTS: (assignment_events, worker_messages),
}
"""The append-only tables of each kind that is pruned by id range and row time (`ts`)."""


@dataclass(frozen=True)
class Protected:
    """What belongs to an unfinished super study: its assignments, and every worker session that
    holds or held one of them (rows without an assignment, such as samples, go by their worker)."""

    assignment_ids: frozenset[str] = frozenset()
    worker_ids: frozenset[str] = frozenset()


def protected(conn: Connection) -> Protected:
    """Read in each round's own transaction, so a study retried a moment ago is protected at once.

    Cheap at any age: only studies with a PENDING or RUNNING assignment (by the status index) or
    with no assignment at all can be unfinished; their summaries decide.
    """
    active = select(assignments.c.super_study_id).where(
        assignments.c.status.in_((AssignmentStatus.PENDING, AssignmentStatus.RUNNING))
    )
    empty = select(super_studies.c.id).where(
        ~select(assignments.c.id).where(assignments.c.super_study_id == super_studies.c.id).exists()
    )
    candidates = set(conn.execute(active.distinct()).scalars()) | set(conn.execute(empty).scalars())
    summaries = study_summaries(conn, candidates)
    unfinished = [sid for sid, summary in summaries.items() if not is_finished(summary.status)]
    if not unfinished:
        return Protected()
    held = conn.execute(
        select(assignments.c.id, assignments.c.worker_id).where(assignments.c.super_study_id.in_(unfinished))
    ).all()
    assignment_ids = frozenset(row.id for row in held)
    workers = {row.worker_id for row in held if row.worker_id}
    earlier = conn.execute(
        select(assignment_events.c.worker_id)
        .where(
            assignment_events.c.assignment_id.in_(assignment_ids), assignment_events.c.worker_id.is_not(None)
        )
        .distinct()
    ).scalars()
    workers.update(earlier)
    return Protected(assignment_ids, frozenset(workers))


def _unprotected(table: Table, keep: Protected) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if "assignment_id" in table.c:
        column = table.c.assignment_id
        if column.nullable:
            conditions.append(or_(column.is_(None), column.not_in(keep.assignment_ids)))
        else:
            conditions.append(column.not_in(keep.assignment_ids))
    if "worker_id" in table.c and table is not assignment_events:  # events go by their assignment
        conditions.append(table.c.worker_id.not_in(keep.worker_ids))
    return conditions


@dataclass(frozen=True)
class Round:
    count: int
    """Rows deleted (counted, in a dry run)."""
    last_id: int | None
    """Where the next round starts (after this id); None once the walk is over."""


def prune_rows(
    conn: Connection,
    table: Table,
    cutoff: float,
    *,
    after_id: int,
    limit: int = ROUND_ROWS,
    dry_run: bool = False,
) -> Round:
    """Delete the rows older than `cutoff` among the `limit` stored next after `after_id`.

    Three statements, each a primary-key range: where the range ends, its oldest row time (the
    walk is over when even that is newer than the cutoff), and the delete or count, which leaves
    out what `protected` names.
    """
    ids = table.c.id
    top = conn.execute(select(ids).where(ids > after_id).order_by(ids).offset(limit - 1).limit(1)).scalar()
    in_range = [ids > after_id] if top is None else [ids > after_id, ids <= top]
    oldest = conn.execute(select(func.min(table.c.ts)).where(*in_range)).scalar()
    if oldest is None or oldest >= cutoff:
        return Round(0, None)
    old = [*in_range, table.c.ts < cutoff, *_unprotected(table, protected(conn))]
    if dry_run:
        count = conn.execute(select(func.count()).select_from(table).where(*old)).scalar_one()
    else:
        count = conn.execute(delete(table).where(*old)).rowcount or 0
    return Round(count, top)


def prune_message_ids(conn: Connection, cutoff: float) -> int:
    """Forget up to `ROUND_ROWS` message ids received before `cutoff`, oldest first (by its index)."""
    return ingest.forget_old_message_ids(conn, cutoff, limit=ROUND_ROWS)


def count_message_ids(conn: Connection, cutoff: float) -> int:
    """How many message ids were received before `cutoff` (a range of the same index)."""
    return conn.execute(
        select(func.count()).select_from(received_messages).where(received_messages.c.received_at < cutoff)
    ).scalar_one()


def finished_studies(conn: Connection, cutoff: float, study_ids: Sequence[str] | None = None) -> list[str]:
    """Ids of the super studies (of `study_ids`, or all) that finished (completed, failed,
    cancelled) and have not changed since `cutoff`, oldest first. A study's last change is its
    own or its newest assignment's."""
    last_change = func.max(assignments.c.updated_at)
    query = (
        select(super_studies.c.id, super_studies.c.updated_at, last_change.label("assignment_change"))
        .select_from(super_studies.outerjoin(assignments, assignments.c.super_study_id == super_studies.c.id))
        .group_by(super_studies.c.id, super_studies.c.updated_at)
    )
    if study_ids is not None:
        query = query.where(super_studies.c.id.in_(study_ids))
    changed = {row.id: max(row.updated_at, row.assignment_change or 0.0) for row in conn.execute(query)}
    old = [study_id for study_id, at in changed.items() if at < cutoff]
    summaries = study_summaries(conn, old)
    return sorted((sid for sid in old if is_finished(summaries[sid].status)), key=lambda sid: changed[sid])


def delete_finished_study(conn: Connection, study_id: str, cutoff: float) -> list[str] | None:
    """Delete the study as the API's delete does, with its profiler timings, if it is still
    finished and unchanged since `cutoff` (else None); returns the assignment ids whose
    artifacts to remove once this commits."""
    if not finished_studies(conn, cutoff, [study_id]):
        return None
    assignment_ids = delete_super_study(conn, study_id)
    if assignment_ids:
        conn.execute(delete(timing_samples).where(timing_samples.c.assignment_id.in_(assignment_ids)))
    return assignment_ids
