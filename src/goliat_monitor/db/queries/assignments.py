"""Assignments: claiming (exactly one worker wins), leases, and the retry / requeue actions.

The worker-reported end of a run is in `ingest.end_assignment`; a study's assignment list and
history are read with the study (`studies`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, RowMapping, or_, select, update

from goliat_monitor.db.queries.common import (
    BACK_TO_PENDING,
    AnyRow,
    Changes,
    Clock,
    assignments_with_worker,
    record_event,
)
from goliat_monitor.db.queries.ingest import resolve_worker
from goliat_monitor.db.queries.studies import note_assignment_end, require_study
from goliat_monitor.db.tables import assignments, super_studies, workers
from goliat_monitor.domain.models import AssignmentStatus, WorkerStatus
from goliat_monitor.domain.scheduling import FailurePolicy, after_failure
from goliat_monitor.errors import Conflict, NotFound


@dataclass(frozen=True)
class AssignmentWithStudy:
    """An assignment (with its worker's name) and the study facts a worker needs to run it."""

    row: RowMapping
    study: AnyRow | None
    """(name, base_config, parent_configs) of its super study."""


# -- claiming ----------------------------------------------------------------------------------


def _holder_text(conn: Connection, row: Mapping[Any, Any]) -> str:
    if row["status"] == AssignmentStatus.PENDING and row["reserved_for"]:
        return f"Assignment is reserved for {row['reserved_for']}"
    if row["status"] != AssignmentStatus.RUNNING:
        return f"Assignment is {row['status']}, not PENDING"
    holder = conn.execute(
        select(workers.c.machine_id, workers.c.hostname).where(workers.c.id == row["worker_id"])
    ).first()
    if holder is None:
        return f"Assignment is already claimed by {row['machine_id']}"
    name = f" ({holder.hostname})" if holder.hostname else ""
    return f"Assignment is already claimed by {holder.machine_id}{name}"


def _take(conn: Connection, row: Mapping[Any, Any], worker: Mapping[Any, Any], clock: Clock) -> bool:
    """The atomic step: PENDING -> RUNNING for exactly one caller, on either database."""
    result = conn.execute(
        update(assignments)
        .where(
            assignments.c.id == row["id"],
            assignments.c.status == AssignmentStatus.PENDING,
            or_(assignments.c.reserved_for.is_(None), assignments.c.reserved_for == worker["machine_id"]),
        )
        .values(
            status=AssignmentStatus.RUNNING,
            reserved_for=None,
            worker_id=worker["id"],
            machine_id=worker["machine_id"],
            attempts=assignments.c.attempts + 1,
            progress=0.0,
            stage=None,
            eta_at=None,
            exit_code=None,
            error_message=None,
            stop_requested=False,
            started_at=clock.now,
            completed_at=None,
            lease_expires_at=clock.now + clock.lease_timeout_s,
            updated_at=clock.now,
        )
    )
    if result.rowcount != 1:
        return False
    conn.execute(
        update(workers)
        .where(workers.c.id == worker["id"])
        .values(
            current_assignment_id=row["id"],
            status=WorkerStatus.RUNNING,
            finished_at=None,
            progress=0.0,
            stage_progress=0.0,
            stage=None,
            sub_stage=None,
            eta_at=None,
            last_seen=clock.now,
            updated_at=clock.now,
        )
    )
    record_event(
        conn,
        row["id"],
        actor=worker["machine_id"],
        from_status=AssignmentStatus.PENDING,
        to_status=AssignmentStatus.RUNNING,
        reason="claimed",
        now=clock.now,
        worker_id=worker["id"],
    )
    return True


@dataclass(frozen=True)
class Claimed:
    assignment: AssignmentWithStudy
    changes: Changes


def claim_assignment(
    conn: Connection, assignment_id: str, machine_id: str, agent_id: str | None, clock: Clock
) -> Claimed:
    """`POST /api/assignments/{id}/claim`: 200 once, 409 for everyone else, 200 again for the holder."""
    changes = Changes()
    row = conn.execute(select(assignments).where(assignments.c.id == assignment_id)).mappings().first()
    if row is None:
        raise NotFound(f"Assignment {assignment_id} not found")
    worker = resolve_worker(conn, machine_id, agent_id, clock, changes)
    if not _take(conn, row, worker, clock):
        row = conn.execute(select(assignments).where(assignments.c.id == assignment_id)).mappings().one()
        same_holder = row["status"] == AssignmentStatus.RUNNING and row["worker_id"] == worker["id"]
        if not same_holder:
            raise Conflict(_holder_text(conn, row))
    changes.studies.add(row["super_study_id"])
    changes.workers.add(worker["id"])
    return Claimed(get_assignment(conn, assignment_id), changes)


CLAIM_TRIES = 8
"""Candidates one claim looks at; one that changed under it (it cannot while locked) is passed over."""


def claim_next(conn: Connection, machine_id: str, agent_id: str | None, clock: Clock) -> Claimed | None:
    """`GET /api/assignment`: the worker's running assignment, else the next PENDING one, else None.

    Oldest super study first, lowest index first. Returning the running one makes the call
    idempotent: an agent that restarts after claiming gets the same assignment back.
    """
    changes = Changes()
    worker = resolve_worker(conn, machine_id, agent_id, clock, changes)
    changes.workers.add(worker["id"])
    requeue_expired_leases(conn, clock, changes)
    mine = conn.execute(
        select(assignments.c.id, assignments.c.super_study_id)
        .where(assignments.c.worker_id == worker["id"], assignments.c.status == AssignmentStatus.RUNNING)
        .order_by(assignments.c.started_at)
        .limit(1)
    ).first()
    if mine is not None:
        conn.execute(
            update(workers).where(workers.c.id == worker["id"]).values(current_assignment_id=mine.id)
        )
        changes.studies.add(mine.super_study_id)
        return Claimed(get_assignment(conn, mine.id), changes)
    candidates = (
        select(assignments)
        .join(super_studies, super_studies.c.id == assignments.c.super_study_id)
        .where(
            assignments.c.status == AssignmentStatus.PENDING,
            or_(assignments.c.reserved_for.is_(None), assignments.c.reserved_for == machine_id),
            super_studies.c.deleted_at.is_(None),
            super_studies.c.cancelled_at.is_(None),
        )
        # What a person reassigned to this machine comes first, then oldest study, lowest index.
        .order_by(
            assignments.c.reserved_for.is_(None),
            super_studies.c.created_at,
            super_studies.c.id,
            assignments.c.index,
        )
        # One row at a time: a row locked here stays locked until the commit, and every claim
        # running beside this one skips it, so locking spare candidates would send those claims
        # away empty-handed while work is waiting.
        .limit(1)
        .with_for_update(of=assignments, skip_locked=True)
    )
    passed: list[str] = []
    for _ in range(CLAIM_TRIES):
        query = candidates.where(assignments.c.id.not_in(passed)) if passed else candidates
        row = conn.execute(query).mappings().first()
        if row is None:
            return None
        if _take(conn, row, worker, clock):
            changes.studies.add(row["super_study_id"])
            return Claimed(get_assignment(conn, row["id"]), changes)
        passed.append(row["id"])
    return None


def requeue_expired_leases(conn: Connection, clock: Clock, changes: Changes) -> int:
    """Hand back every RUNNING assignment whose worker stopped renewing its lease."""
    expired = (
        conn.execute(
            select(assignments, super_studies.c.max_attempts, super_studies.c.retry_fatal)
            .join(super_studies, super_studies.c.id == assignments.c.super_study_id)
            .where(
                assignments.c.status == AssignmentStatus.RUNNING,
                assignments.c.lease_expires_at < clock.now,
            )
            .with_for_update(of=assignments, skip_locked=True)
        )
        .mappings()
        .all()
    )
    for row in expired:
        policy = FailurePolicy(row["max_attempts"], row["retry_fatal"])
        target = after_failure(attempts=row["attempts"], policy=policy, exit_code=None, lease_lost=True)
        if row["stop_requested"]:
            target = AssignmentStatus.CANCELLED
        values: dict[str, Any] = {"status": target, "lease_expires_at": None, "updated_at": clock.now}
        reason = "lease expired: worker silent too long"
        values["error_message"] = reason
        if target == AssignmentStatus.PENDING:
            values.update(BACK_TO_PENDING)
        else:
            values["completed_at"] = clock.now
        conn.execute(update(assignments).where(assignments.c.id == row["id"]).values(**values))
        _release_worker(conn, row, changes)
        record_event(
            conn,
            row["id"],
            actor="server",
            from_status=row["status"],
            to_status=target,
            reason=reason,
            now=clock.now,
            worker_id=row["worker_id"],
        )
        note_assignment_end(conn, row, target, reason=reason, out_of_memory=False, now=clock.now)
        changes.studies.add(row["super_study_id"])
    return len(expired)


# -- actions and reads ---------------------------------------------------------------------------


def _assignment_for_update(conn: Connection, assignment_id: str) -> RowMapping:
    row = (
        conn.execute(select(assignments).where(assignments.c.id == assignment_id).with_for_update())
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"Assignment {assignment_id} not found")
    return row


def _release_worker(conn: Connection, row: Mapping[Any, Any], changes: Changes) -> None:
    if row["worker_id"]:
        conn.execute(
            update(workers)
            .where(workers.c.id == row["worker_id"], workers.c.current_assignment_id == row["id"])
            .values(current_assignment_id=None)
        )
        changes.workers.add(row["worker_id"])


def retry_assignment(conn: Connection, assignment_id: str, *, actor: str, now: float) -> Changes:
    """A FAILED or CANCELLED piece goes back to PENDING with a fresh attempt budget."""
    row = _assignment_for_update(conn, assignment_id)
    study = require_study(conn, row["super_study_id"])
    if row["status"] not in (AssignmentStatus.FAILED, AssignmentStatus.CANCELLED):
        raise Conflict(f"Only FAILED or CANCELLED assignments can be retried; this one is {row['status']}")
    if study["cancelled_at"] is not None:
        conn.execute(
            update(super_studies)
            .where(super_studies.c.id == study["id"])
            .values(cancelled_at=None, updated_at=now)
        )
    conn.execute(
        update(assignments)
        .where(assignments.c.id == assignment_id)
        .values(
            **BACK_TO_PENDING,
            attempts=0,
            exit_code=None,
            error_message=None,
            completed_at=None,
            updated_at=now,
        )
    )
    record_event(
        conn,
        assignment_id,
        actor=actor,
        from_status=row["status"],
        to_status=AssignmentStatus.PENDING,
        reason="retry requested",
        now=now,
    )
    return Changes(studies={row["super_study_id"]})


def requeue_assignment(
    conn: Connection, assignment_id: str, *, actor: str, now: float, reserved_for: str | None = None
) -> Changes:
    """Take a piece back (RUNNING or PENDING) so another worker runs it; optionally for one machine.

    The worker that was running it is told on its next message (409) and its agent stops the
    study. The interrupted attempt is not counted against the piece: it was not its fault.
    """
    row = _assignment_for_update(conn, assignment_id)
    if row["status"] not in (AssignmentStatus.RUNNING, AssignmentStatus.PENDING):
        raise Conflict(f"Only RUNNING or PENDING assignments can be requeued; this one is {row['status']}")
    changes = Changes(studies={row["super_study_id"]})
    _release_worker(conn, row, changes)
    attempts = max(0, row["attempts"] - 1) if row["status"] == AssignmentStatus.RUNNING else row["attempts"]
    conn.execute(
        update(assignments)
        .where(assignments.c.id == assignment_id)
        .values(**BACK_TO_PENDING, attempts=attempts, reserved_for=reserved_for, updated_at=now)
    )
    reason = f"reassigned to {reserved_for}" if reserved_for else "requeued by request"
    record_event(
        conn,
        assignment_id,
        actor=actor,
        from_status=row["status"],
        to_status=AssignmentStatus.PENDING,
        reason=reason,
        now=now,
        worker_id=row["worker_id"],
    )
    return changes


def get_assignment(conn: Connection, assignment_id: str) -> AssignmentWithStudy:
    row = conn.execute(assignments_with_worker().where(assignments.c.id == assignment_id)).mappings().first()
    if row is None:
        raise NotFound(f"Assignment {assignment_id} not found")
    study = conn.execute(
        select(super_studies.c.name, super_studies.c.base_config, super_studies.c.parent_configs).where(
            super_studies.c.id == row["super_study_id"]
        )
    ).first()
    return AssignmentWithStudy(row, study)


def assignment_study_id(conn: Connection, assignment_id: str) -> str:
    found = conn.execute(
        select(assignments.c.super_study_id).where(assignments.c.id == assignment_id)
    ).first()
    if found is None:
        raise NotFound(f"Assignment {assignment_id} not found")
    return str(found.super_study_id)
