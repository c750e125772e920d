"""What every query module shares: the write's clock, what it changed, ids, and assignment history."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row, Select, insert, select

from goliat_monitor.db.tables import assignment_events, assignments, workers
from goliat_monitor.domain import gui_state
from goliat_monitor.domain.models import AssignmentStatus

AnyRow = Row[*tuple[Any, ...]]
"""A result row of any columns, read by attribute (`row.id`)."""


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Clock:
    """The moment a write happens and the liveness rules that apply to it."""

    now: float
    offline_after_s: float = 30.0
    finish_grace_s: float = 5.0
    sample_interval_s: float = 1.0
    lease_timeout_s: float = 600.0


@dataclass
class Changes:
    """What a write touched, for the live push after commit."""

    workers: set[str] = field(default_factory=set)
    studies: set[str] = field(default_factory=set)
    log_workers: set[str] = field(default_factory=set)
    timing_workers: set[str] = field(default_factory=set)
    """Workers with new profiler timings: their pages re-read the Timings tabs."""
    log_lines: int = 0
    """Log lines stored, for the server's `goliat_monitor_log_lines_total` counter."""

    def merge(self, other: Changes) -> None:
        self.workers |= other.workers
        self.studies |= other.studies
        self.log_workers |= other.log_workers
        self.timing_workers |= other.timing_workers
        self.log_lines += other.log_lines


BACK_TO_PENDING: dict[str, Any] = {
    "status": AssignmentStatus.PENDING,
    "worker_id": None,
    "progress": 0.0,
    "stage": None,
    "eta_at": None,
    "lease_expires_at": None,
    "stop_requested": False,
}
"""What an assignment's row loses when it goes back to the queue, whatever the reason."""


def is_online(row: Mapping[Any, Any], clock: Clock) -> bool:
    """Is the worker session in `row` still heard from, by the rules of `clock`?"""
    return gui_state.is_online(
        last_seen=row["last_seen"],
        now=clock.now,
        configured_s=clock.offline_after_s,
        heartbeat_interval_s=row["heartbeat_interval_s"],
    )


def assignments_with_worker() -> Select[Any]:
    """Assignment rows with the hostname and label of the worker running them, as the API lists them."""
    return select(assignments, workers.c.hostname, workers.c.machine_label).outerjoin(
        workers, workers.c.id == assignments.c.worker_id
    )


def record_event(
    conn: Connection,
    assignment_id: str,
    *,
    actor: str,
    from_status: str | None,
    to_status: str,
    reason: str | None,
    now: float,
    worker_id: str | None = None,
) -> None:
    """One line of an assignment's history: who moved it from which status to which, and why."""
    conn.execute(
        insert(assignment_events).values(
            assignment_id=assignment_id,
            ts=now,
            actor=actor,
            worker_id=worker_id,
            from_status=from_status,
            to_status=to_status,
            reason=reason,
        )
    )
