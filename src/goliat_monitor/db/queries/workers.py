"""Worker sessions and their logs, as the read API and the live pages see them.

Reads return rows; `server/views.py` turns them into the API's JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, RowMapping, func, or_, select, tuple_, update

from goliat_monitor.db.queries import logs
from goliat_monitor.db.queries.artifacts import screenshots_of
from goliat_monitor.db.queries.common import AnyRow, Changes, assignments_with_worker
from goliat_monitor.db.tables import (
    assignment_events,
    assignments,
    log_lines,
    timing_samples,
    worker_samples,
    workers,
)
from goliat_monitor.errors import NotFound


@dataclass(frozen=True)
class LogPage:
    """A page of log lines, oldest first: rows of (id, ord, ts, log_type, message)."""

    lines: list[AnyRow]
    next_before: str | None
    """The cursor of the page before this one, None when this is the oldest."""


@dataclass(frozen=True)
class WorkerDetail:
    """One worker session with its recent log lines, assignments and screenshots."""

    row: RowMapping
    logs: LogPage
    assignments: list[RowMapping]
    screenshots: list[AnyRow]
    """(tab, label, size, updated_at) of each tab's latest screenshot."""


def list_workers(conn: Connection, *, include_stale: bool = False) -> list[RowMapping]:
    """Worker sessions, most recently seen first; stale ones (replaced by a newer session) on request."""
    query = select(workers)
    if not include_stale:
        query = query.where(~workers.c.is_stale)
    return list(conn.execute(query.order_by(workers.c.last_seen.desc())).mappings().all())


def get_worker(conn: Connection, worker_id: str, *, recent_logs: int) -> WorkerDetail:
    row = conn.execute(select(workers).where(workers.c.id == worker_id)).mappings().first()
    if row is None:
        raise NotFound(f"Worker {worker_id} not found")
    page = log_page(conn, worker_id, limit=recent_logs)
    ran = assignments_with_worker().where(
        or_(
            assignments.c.worker_id == worker_id,
            assignments.c.id.in_(
                select(assignment_events.c.assignment_id).where(assignment_events.c.worker_id == worker_id)
            ),
        )
    )
    listed = list(conn.execute(ran.order_by(assignments.c.started_at.desc())).mappings().all())
    return WorkerDetail(row, page, listed, screenshots_of(conn, worker_id))


def parse_cursor(cursor: str) -> tuple[int, int]:
    """A log cursor is `<order key>.<row id>`, as returned in `nextBefore`."""
    order_text, _, id_text = cursor.partition(".")
    return int(order_text), int(id_text)


def log_cursor(order: int, row_id: int) -> str:
    """The cursor of one log line: `parse_cursor` reads it back."""
    return f"{order}.{row_id}"


def log_page(
    conn: Connection,
    worker_id: str,
    *,
    before: str | None = None,
    limit: int = 200,
    log_types: Sequence[str] = (),
    text: str | None = None,
) -> LogPage:
    """A page of log lines, newest page first, lines oldest first within the page.

    With `text`, a search through the text index (`logs.search_lines`): matching lines newest
    stored first, and the cursor continues below the oldest hit's row id.
    """
    if text:
        search = logs.LogSearch(
            text=logs.check_query(text),
            log_types=log_types,
            worker_id=worker_id,
            before_id=parse_cursor(before)[1] if before else None,
            limit=limit,
        )
        hits = logs.search_lines(conn, search)
        more = len(hits) > limit
        hits = hits[:limit]
        hits.reverse()
        return LogPage(hits, log_cursor(hits[0].ord, hits[0].id) if more and hits else None)
    query = select(
        log_lines.c.id, log_lines.c.ord, log_lines.c.ts, log_lines.c.log_type, log_lines.c.message
    ).where(log_lines.c.worker_id == worker_id)
    if before:
        order, row_id = parse_cursor(before)
        # A row-value comparison, so both databases walk the (worker_id, ord, id) index backwards.
        query = query.where(tuple_(log_lines.c.ord, log_lines.c.id) < tuple_(order, row_id))
    if log_types:
        query = query.where(log_lines.c.log_type.in_(list(log_types)))
    rows = conn.execute(query.order_by(log_lines.c.ord.desc(), log_lines.c.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = list(rows[:limit])
    rows.reverse()
    return LogPage(rows, log_cursor(rows[0].ord, rows[0].id) if more and rows else None)


def log_around(conn: Connection, worker_id: str, cursor: str, *, limit: int = 200) -> LogPage:
    """The lines around one line (a search hit opened in its worker's log), oldest first: the
    line, up to `limit // 2` before it and as many after it in GOLIAT's order."""
    order, row_id = parse_cursor(cursor)
    columns = (log_lines.c.id, log_lines.c.ord, log_lines.c.ts, log_lines.c.log_type, log_lines.c.message)
    key = tuple_(log_lines.c.ord, log_lines.c.id)
    mine = log_lines.c.worker_id == worker_id
    before = limit // 2 + 1
    older = conn.execute(
        select(*columns)
        .where(mine, key <= tuple_(order, row_id))
        .order_by(log_lines.c.ord.desc(), log_lines.c.id.desc())
        .limit(before + 1)
    ).all()
    newer = conn.execute(
        select(*columns)
        .where(mine, key > tuple_(order, row_id))
        .order_by(log_lines.c.ord, log_lines.c.id)
        .limit(limit - before)
    ).all()
    more = len(older) > before
    rows = list(reversed(older[:before])) + list(newer)
    return LogPage(rows, log_cursor(rows[0].ord, rows[0].id) if more and rows else None)


def worker_exists(conn: Connection, worker_id: str) -> None:
    if conn.execute(select(workers.c.id).where(workers.c.id == worker_id)).first() is None:
        raise NotFound(f"Worker {worker_id} not found")


def worker_samples_since(
    conn: Connection, worker_id: str, since: float, limit: int = 5000
) -> list[RowMapping]:
    """The worker's progress and utilisation samples since `since`, oldest first (the newest `limit`)."""
    worker_exists(conn, worker_id)
    rows = list(
        conn.execute(
            select(worker_samples)
            .where(worker_samples.c.worker_id == worker_id, worker_samples.c.ts >= since)
            .order_by(worker_samples.c.ts.desc())
            .limit(limit)
        )
        .mappings()
        .all()
    )
    rows.reverse()
    return rows


@dataclass(frozen=True)
class RunTimings:
    """The profiler durations of a worker's current run, with the worker row for the summary."""

    worker: RowMapping
    assignment_id: str | None
    samples: list[AnyRow]
    """(phase, subtask, seconds) in the order they arrived."""


def current_run_timings(conn: Connection, worker_id: str) -> RunTimings:
    """The timings of the run a worker's page shows: the assignment it runs now, else the run of
    its newest timing (the one it finished last, or a study started outside a super study)."""
    row = conn.execute(select(workers).where(workers.c.id == worker_id)).mappings().first()
    if row is None:
        raise NotFound(f"Worker {worker_id} not found")
    run = row["current_assignment_id"]
    if run is None:
        run = conn.execute(
            select(timing_samples.c.assignment_id)
            .where(timing_samples.c.worker_id == worker_id)
            .order_by(timing_samples.c.id.desc())
            .limit(1)
        ).scalar()
    same_run = (
        timing_samples.c.assignment_id.is_(None) if run is None else timing_samples.c.assignment_id == run
    )
    samples = conn.execute(
        select(timing_samples.c.phase, timing_samples.c.subtask, timing_samples.c.seconds)
        .where(timing_samples.c.worker_id == worker_id, same_run)
        .order_by(timing_samples.c.id)
    ).all()
    return RunTimings(row, run, list(samples))


def set_worker_label(conn: Connection, worker_id: str, label: str | None, now: float) -> Changes:
    return _set_on_machine(conn, worker_id, now, machine_label=label)


def _set_on_machine(conn: Connection, worker_id: str, now: float, **values: object) -> Changes:
    """Label and price name the machine, so every session of it carries the same value."""
    worker_exists(conn, worker_id)
    machine = conn.execute(select(workers.c.machine_id).where(workers.c.id == worker_id)).scalar_one()
    conn.execute(update(workers).where(workers.c.machine_id == machine).values(**values, updated_at=now))
    return Changes(workers={worker_id})


def set_worker_price(conn: Connection, worker_id: str, price: float | None, now: float) -> Changes:
    """The machine's price per hour (None: the server's default), on every session of it."""
    return _set_on_machine(conn, worker_id, now, price_per_hour=price)


# -- live pages: reads for server/pages.py and the SSE hub --------------------------------------


def workers_by_ids(conn: Connection, worker_ids: Iterable[str]) -> list[RowMapping]:
    """A few worker sessions (stale ones included), for live pushes.

    The hub re-reads only the workers that changed, so 100 busy workers cost one small query
    per push instead of a full `list_workers`.
    """
    ids = list(worker_ids)
    if not ids:
        return []
    return list(conn.execute(select(workers).where(workers.c.id.in_(ids))).mappings().all())


def max_log_line_id(conn: Connection) -> int:
    """The newest log row id: where a page's live log tail starts (a primary-key lookup)."""
    return int(conn.execute(select(func.max(log_lines.c.id))).scalar_one() or 0)


def log_lines_after(
    conn: Connection, after_id: int, limit: int = 5000, *, also_ids: Sequence[int] = ()
) -> list[AnyRow]:
    """Log rows stored after row `after_id` (plus rows `also_ids`), in id order, for every worker.

    Reads a primary-key range, never a worker's whole index: cheap however long a worker's
    history is. `also_ids` re-asks for ids skipped earlier, which on PostgreSQL may commit after
    higher ones. Rows are (id, worker_id, ord, ts, log_type, message): `log_page`'s and the worker's.
    """
    condition = log_lines.c.id > after_id
    if also_ids:
        condition = or_(condition, log_lines.c.id.in_(list(also_ids)))
    return list(
        conn.execute(
            select(
                log_lines.c.id,
                log_lines.c.worker_id,
                log_lines.c.ord,
                log_lines.c.ts,
                log_lines.c.log_type,
                log_lines.c.message,
            )
            .where(condition)
            .order_by(log_lines.c.id)
            .limit(limit)
        ).all()
    )
