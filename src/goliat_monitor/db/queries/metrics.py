"""What `GET /metrics` reads from the database at scrape time, so every replica reports the same.

Four small reads, none of them over log lines: the live worker sessions (one row per machine),
assignments counted by status (the status index), studies counted by the status of their
assignments, and the GPU-hours of every attempt from the assignment history in one aggregate.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from goliat_monitor.db.queries.common import Clock, is_online
from goliat_monitor.domain.cost import HOUR_S
from goliat_monitor.domain.models import AssignmentStatus, StudyStatus, WorkerStatus
from goliat_monitor.domain.scheduling import study_status


@dataclass(frozen=True)
class Snapshot:
    workers: dict[str, int] = field(default_factory=dict)
    assignments: dict[str, int] = field(default_factory=dict)
    super_studies: dict[str, int] = field(default_factory=dict)
    gpu_hours: float = 0.0


def snapshot(conn: Connection, clock: Clock) -> Snapshot:
    return Snapshot(
        workers=worker_counts(conn, clock),
        assignments=assignment_counts(conn),
        super_studies=study_counts(conn),
        gpu_hours=gpu_hours(conn, clock.now),
    )


def worker_counts(conn: Connection, clock: Clock) -> dict[str, int]:
    """Live sessions by the status the dashboard shows: a silent one is OFFLINE whatever it last said."""
    counts = dict.fromkeys(WorkerStatus, 0)
    rows = conn.execute(
        text("SELECT status, last_seen, heartbeat_interval_s FROM workers WHERE is_stale = :stale"),
        {"stale": False},
    ).mappings()
    for row in rows:
        status = row["status"] if is_online(row, clock) else WorkerStatus.OFFLINE
        counts[WorkerStatus(status)] += 1
    return {str(status): n for status, n in counts.items()}


def assignment_counts(conn: Connection) -> dict[str, int]:
    counts = dict.fromkeys((str(s) for s in AssignmentStatus), 0)
    for status, n in conn.execute(text("SELECT status, COUNT(*) FROM assignments GROUP BY status")):
        counts[status] = int(n)
    return counts


def study_counts(conn: Connection) -> dict[str, int]:
    """Live studies by status, the status derived from their assignments as everywhere else."""
    per_study: dict[str, Counter[str]] = {}
    cancelled: dict[str, bool] = {}
    rows = conn.execute(
        text(
            "SELECT s.id, s.cancelled_at, a.status, COUNT(a.id) FROM super_studies s"
            " LEFT JOIN assignments a ON a.super_study_id = s.id"
            " WHERE s.deleted_at IS NULL GROUP BY s.id, s.cancelled_at, a.status"
        )
    )
    for study_id, cancelled_at, status, n in rows:
        counts = per_study.setdefault(study_id, Counter())
        cancelled[study_id] = cancelled_at is not None
        if status is not None:
            counts[status] += int(n)
    out = dict.fromkeys((str(s) for s in StudyStatus), 0)
    for study_id, counts in per_study.items():
        out[str(study_status(counts, cancelled=cancelled[study_id]))] += 1
    return out


def gpu_hours(conn: Connection, now: float) -> float:
    """GPU-hours of every attempt in the history (domain/cost.py's attempts), running ones to now.

    Summed without pairing events: each attempt is one event into RUNNING and, once it ended, one
    out of it, so the sum of durations is the sum of ending times minus the sum of starting times,
    plus `now` for every attempt still open (the assignments RUNNING now).
    """
    row = conn.execute(
        text(
            "SELECT"
            " COALESCE(SUM(CASE WHEN to_status = :running AND (from_status IS NULL OR from_status <> :running)"
            " THEN ts END), 0),"
            " COUNT(CASE WHEN to_status = :running AND (from_status IS NULL OR from_status <> :running)"
            " THEN 1 END),"
            " COALESCE(SUM(CASE WHEN from_status = :running AND to_status <> :running THEN ts END), 0),"
            " COUNT(CASE WHEN from_status = :running AND to_status <> :running THEN 1 END)"
            " FROM assignment_events"
        ),
        {"running": str(AssignmentStatus.RUNNING)},
    ).one()
    started, opened, ended, closed = float(row[0]), int(row[1]), float(row[2]), int(row[3])
    seconds = ended - started + max(0, opened - closed) * now
    return max(0.0, seconds) / HOUR_S
