"""Every read and write the server makes, as functions of a connection.

Route handlers call these through `Database.read` / `Database.write`; each write function runs in
its own savepoint, so raising an `ApiError` half-way leaves the database exactly as it was.
No SQL lives anywhere else.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    RowMapping,
    delete,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)

from goliat_monitor.db.raw import Raw, update_sql
from goliat_monitor.db.tables import (
    assignment_events,
    assignments,
    log_lines,
    received_messages,
    result_files,
    screenshots,
    super_studies,
    worker_messages,
    worker_samples,
    workers,
)
from goliat_monitor.domain import gui_state
from goliat_monitor.domain.gui_state import Ending, Interpretation
from goliat_monitor.domain.models import AssignmentStatus, WorkerStatus
from goliat_monitor.domain.progress import AssignmentTiming, estimate_study
from goliat_monitor.domain.scheduling import (
    AssignmentView,
    FailurePolicy,
    StudySummary,
    after_failure,
    summarize_study,
)
from goliat_monitor.errors import Conflict, NotFound


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

    def merge(self, other: Changes) -> None:
        self.workers |= other.workers
        self.studies |= other.studies
        self.log_workers |= other.log_workers


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


# -- idempotency -------------------------------------------------------------------------------


def seen_before(conn: Connection, machine_id: str, message_id: str | None, now: float) -> bool:
    """Record `message_id`; True when it was already recorded (a redelivery to ignore)."""
    if not message_id:
        return False
    raw = Raw(conn)
    params = {"machine_id": machine_id, "message_id": message_id, "now": now}
    found = raw.scalar(
        "SELECT 1 FROM received_messages WHERE machine_id = :machine_id AND message_id = :message_id", params
    )
    if found:
        return True
    raw.run(
        "INSERT INTO received_messages (machine_id, message_id, received_at) VALUES (:machine_id, :message_id, :now)",
        params,
    )
    return False


FORGET_BATCH = 5_000
"""Most message ids one housekeeping round forgets: ~20 ms of SQLite's writer, on the event loop."""


def forget_old_message_ids(conn: Connection, older_than: float, *, limit: int = FORGET_BATCH) -> int:
    """Forget the oldest message ids received before `older_than`, at most `limit` of them.

    Rounds run every few seconds, so a day of ids drains in bounded steps even after downtime.
    """
    oldest = (
        select(received_messages.c.machine_id, received_messages.c.message_id)
        .where(received_messages.c.received_at < older_than)
        .order_by(received_messages.c.received_at)
        .limit(limit)
    )
    key = tuple_(received_messages.c.machine_id, received_messages.c.message_id)
    result = conn.execute(delete(received_messages).where(key.in_(oldest)))
    return result.rowcount or 0


# -- worker sessions ---------------------------------------------------------------------------


def _is_online(row: Mapping[Any, Any], clock: Clock) -> bool:
    return gui_state.is_online(
        last_seen=row["last_seen"],
        now=clock.now,
        configured_s=clock.offline_after_s,
        heartbeat_interval_s=row["heartbeat_interval_s"],
    )


def resolve_worker(
    conn: Connection, machine_id: str, agent_id: str | None, clock: Clock, changes: Changes
) -> dict[str, Any]:
    """The live session of a machine (and agent), creating a new one when needed.

    A machine that comes back after being offline gets a new session (a new worker id, fresh GUI
    state); its RUNNING assignments follow it, so the assignment it was running is not orphaned.
    """
    agent = agent_id or ""
    raw = Raw(conn)
    row = raw.one(
        "SELECT * FROM workers WHERE machine_id = :machine_id AND agent_id = :agent_id"
        f" AND is_stale = {raw.false}{raw.for_update}",
        {"machine_id": machine_id, "agent_id": agent},
    )
    if row is not None and _is_online(row, clock):
        return row
    label = None
    if row is not None:
        conn.execute(update(workers).where(workers.c.id == row["id"]).values(is_stale=True))
        changes.workers.add(row["id"])
        label = row["machine_label"]
    worker_id = new_id()
    conn.execute(
        insert(workers).values(
            id=worker_id,
            machine_id=machine_id,
            agent_id=agent,
            is_stale=False,
            status=WorkerStatus.IDLE,
            machine_label=label,
            hostname=row["hostname"] if row is not None else None,
            gpu_name=row["gpu_name"] if row is not None else None,
            cpu_cores=row["cpu_cores"] if row is not None else None,
            total_ram_gb=row["total_ram_gb"] if row is not None else None,
            last_seen=clock.now,
            created_at=clock.now,
            updated_at=clock.now,
        )
    )
    stale_sessions = select(workers.c.id).where(
        workers.c.machine_id == machine_id, workers.c.agent_id == agent, workers.c.is_stale
    )
    moved = conn.execute(
        update(assignments)
        .where(assignments.c.status == AssignmentStatus.RUNNING, assignments.c.worker_id.in_(stale_sessions))
        .values(worker_id=worker_id, updated_at=clock.now)
        .returning(assignments.c.id, assignments.c.super_study_id)
    ).all()
    if moved:
        conn.execute(
            update(workers)
            .where(workers.c.id == worker_id)
            .values(status=WorkerStatus.RUNNING, current_assignment_id=moved[-1].id)
        )
        changes.studies.update(m.super_study_id for m in moved)
    changes.workers.add(worker_id)
    return dict(conn.execute(select(workers).where(workers.c.id == worker_id)).mappings().one())


def _renew_lease(conn: Connection, worker: Mapping[Any, Any], clock: Clock) -> None:
    if worker["current_assignment_id"]:
        Raw(conn).run(
            "UPDATE assignments SET lease_expires_at = :lease WHERE id = :id AND worker_id = :worker_id"
            " AND status = 'RUNNING'",
            {
                "lease": clock.now + clock.lease_timeout_s,
                "id": worker["current_assignment_id"],
                "worker_id": worker["id"],
            },
        )


def record_heartbeat(conn: Connection, beat: Mapping[Any, Any], clock: Clock) -> tuple[Changes, list[str]]:
    """Refresh a worker; returns what changed and the assignments its agent should stop."""
    changes = Changes()
    if seen_before(conn, beat["machineId"], beat.get("messageId"), clock.now):
        return changes, []
    worker = resolve_worker(conn, beat["machineId"], beat.get("agentId"), clock, changes)
    values: dict[str, Any] = {"last_seen": clock.now, "updated_at": clock.now, "last_heartbeat_at": clock.now}
    previous = worker["last_heartbeat_at"]
    if previous is not None and 0 < clock.now - previous <= 600:
        values["heartbeat_interval_s"] = clock.now - previous
    for wire, column in (
        ("hostname", "hostname"),
        ("gpuName", "gpu_name"),
        ("cpuCores", "cpu_cores"),
        ("totalRamGB", "total_ram_gb"),
    ):
        if beat.get(wire) is not None:
            values[column] = beat[wire]
    raw = Raw(conn)
    raw.run(update_sql("workers", values), {**values, "id": worker["id"]})
    metrics = {
        "cpu_percent": beat.get("cpuPercent"),
        "ram_percent": beat.get("ramPercent"),
        "gpu_percent": beat.get("gpuPercent"),
        "vram_used_gb": beat.get("vramUsedGB"),
        "vram_total_gb": beat.get("vramTotalGB"),
    }
    if any(value is not None for value in metrics.values()):
        raw.run(
            "INSERT INTO worker_samples (worker_id, ts, cpu_percent, ram_percent, gpu_percent, vram_used_gb,"
            " vram_total_gb) VALUES (:worker_id, :ts, :cpu_percent, :ram_percent, :gpu_percent,"
            " :vram_used_gb, :vram_total_gb)",
            {"worker_id": worker["id"], "ts": clock.now, **metrics},
        )
    _renew_lease(conn, worker, clock)
    changes.workers.add(worker["id"])
    stop = []
    if beat.get("assignmentId") and not _holds(conn, beat["assignmentId"], worker["id"]):
        stop.append(beat["assignmentId"])
    return changes, stop


def _holds(conn: Connection, assignment_id: str, worker_id: str) -> bool:
    """Is `worker_id` still the one running `assignment_id`, without a stop request?"""
    row = Raw(conn).one(
        "SELECT worker_id, status, stop_requested FROM assignments WHERE id = :id", {"id": assignment_id}
    )
    return (
        row is not None
        and row["worker_id"] == worker_id
        and row["status"] == AssignmentStatus.RUNNING
        and not row["stop_requested"]
    )


# -- GUI updates -------------------------------------------------------------------------------


def record_gui_update(conn: Connection, update_: Mapping[Any, Any], clock: Clock) -> Changes:
    """Apply one `POST /api/gui-update` body (already validated, as a dict)."""
    changes = Changes()
    if seen_before(conn, update_["machineId"], update_.get("messageId"), clock.now):
        return changes
    worker = resolve_worker(conn, update_["machineId"], update_.get("agentId"), clock, changes)
    claimed_for = update_.get("assignmentId")
    if (
        claimed_for
        and not _holds(conn, claimed_for, worker["id"])
        and update_["message"].get("type") != "finished"
    ):
        # The assignment was handed to another worker or stopped: this sender's run is over, and
        # its late messages must not touch the new run.
        raise Conflict(f"Assignment {claimed_for} is no longer running on this worker; stop it")
    message = update_["message"]
    result = gui_state.interpret(message, now=clock.now, sent_at=update_.get("timestamp"))
    values: dict[str, Any] = {"last_seen": clock.now, "updated_at": clock.now, **result.changes}

    reopen = gui_state.reopens_run(
        finished_at=worker["finished_at"], now=clock.now, grace_s=clock.finish_grace_s
    )
    values["status"] = str(gui_state.status_after(worker["status"], result, reopen=reopen))
    if result.is_progress and reopen:
        values["last_progress_at"] = clock.now
        values["finished_at"] = None

    assignment_id = worker["current_assignment_id"]
    if result.logs:
        _store_logs(conn, worker, result, values, clock)
        changes.log_workers.add(worker["id"])
    if result.keep:
        conn.execute(
            insert(worker_messages).values(
                worker_id=worker["id"], ts=clock.now, type=message["type"], payload=dict(message)
            )
        )
    if "progress" in values or "stage_progress" in values:
        _maybe_sample(conn, worker, values, clock)

    if assignment_id and result.ending is None and (result.changes and reopen):
        study_id = _update_assignment_progress(conn, assignment_id, worker["id"], values, clock)
        if study_id:
            changes.studies.add(study_id)
    if result.ending is not None:
        values["finished_at"] = clock.now
        values["current_assignment_id"] = None
        if not result.ending.failed:
            values["progress"] = 100.0
        if assignment_id:
            study_id = end_assignment(
                conn, assignment_id, worker["id"], result.ending, clock, actor=update_["machineId"]
            )
            if study_id:
                changes.studies.add(study_id)
    Raw(conn).run(update_sql("workers", values), {**values, "id": worker["id"]})
    if values.get("current_assignment_id", assignment_id):
        _renew_lease(conn, {**worker, **values}, clock)
    changes.workers.add(worker["id"])
    return changes


def _store_logs(
    conn: Connection,
    worker: Mapping[Any, Any],
    result: Interpretation,
    values: dict[str, Any],
    clock: Clock,
) -> None:
    run = worker["log_run"]
    max_sequence = worker["log_max_sequence"]
    warnings, errors = gui_state.count_logs(result.logs)
    warning_count, error_count = worker["warning_count"], worker["error_count"]
    if result.sequence is not None:
        low, high = gui_state.sequence_range(run, result.sequence)
        taken = Raw(conn).scalar(
            "SELECT 1 FROM log_lines WHERE worker_id = :worker_id AND ord BETWEEN :low AND :high LIMIT 1",
            {"worker_id": worker["id"], "low": low, "high": high},
        )
        new_run = gui_state.run_for_batch(current_run=run, sequence_taken=bool(taken))
        if new_run != run:
            run, max_sequence = new_run, -1
            warning_count = error_count = 0
            values["log_run"] = run
        sequence = result.sequence
        max_sequence = max(max_sequence, sequence)
        base = 0
    else:
        # A single `status` line (older clients) or a batch without sequence: after the newest batch.
        sequence = max(max_sequence, 0)
        base = gui_state.MAX_POSITION
    values["log_max_sequence"] = max_sequence
    values["warning_count"] = warning_count + warnings
    values["error_count"] = error_count + errors
    Raw(conn).insert(
        "log_lines",
        ("worker_id", "ord", "ts", "log_type", "message"),
        [
            (
                worker["id"],
                gui_state.order_key(run, sequence, base + position),
                line.timestamp,
                line.log_type,
                line.message,
            )
            for position, line in enumerate(result.logs)
        ],
    )


def _maybe_sample(
    conn: Connection, worker: Mapping[Any, Any], values: Mapping[Any, Any], clock: Clock
) -> None:
    last = worker["last_sample_at"]
    if last is not None and clock.now - last < clock.sample_interval_s:
        return
    Raw(conn).run(
        "INSERT INTO worker_samples (worker_id, ts, progress, stage_progress)"
        " VALUES (:worker_id, :ts, :progress, :stage_progress)",
        {
            "worker_id": worker["id"],
            "ts": clock.now,
            "progress": values.get("progress", worker["progress"]),
            "stage_progress": values.get("stage_progress", worker["stage_progress"]),
        },
    )
    # Mutating the caller's dict is deliberate: the worker row update carries the sample time.
    assert isinstance(values, dict)
    values["last_sample_at"] = clock.now


def _update_assignment_progress(
    conn: Connection, assignment_id: str, worker_id: str, values: Mapping[Any, Any], clock: Clock
) -> str | None:
    changes: dict[str, Any] = {}
    if "progress" in values:
        changes["progress"] = values["progress"]
    if "stage" in values:
        changes["stage"] = values["stage"]
    if "eta_at" in values:
        changes["eta_at"] = values["eta_at"]
    if not changes:
        return None
    changes["updated_at"] = clock.now
    sets = ", ".join(f"{column} = :{column}" for column in sorted(changes))
    study_id: str | None = Raw(conn).scalar(
        f"UPDATE assignments SET {sets} WHERE id = :id AND worker_id = :worker_id AND status = 'RUNNING'"
        " RETURNING super_study_id",
        {**changes, "id": assignment_id, "worker_id": worker_id},
    )
    return study_id


def _record_event(
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


def end_assignment(
    conn: Connection,
    assignment_id: str,
    worker_id: str,
    ending: Ending,
    clock: Clock,
    *,
    actor: str,
) -> str | None:
    """Close the attempt `worker_id` was running: COMPLETED, back to PENDING for a retry, or FAILED.

    Does nothing (returns None) when the assignment is no longer this worker's running attempt,
    so a late message from a worker whose assignment was handed to another cannot corrupt it.
    """
    row = (
        conn.execute(
            select(assignments, super_studies.c.max_attempts, super_studies.c.retry_fatal)
            .join(super_studies, super_studies.c.id == assignments.c.super_study_id)
            .where(assignments.c.id == assignment_id)
            .with_for_update(of=assignments)
        )
        .mappings()
        .first()
    )
    if row is None or row["worker_id"] != worker_id or row["status"] != AssignmentStatus.RUNNING:
        return None
    values: dict[str, Any] = {
        "updated_at": clock.now,
        "exit_code": ending.exit_code,
        "lease_expires_at": None,
    }
    if row["stop_requested"] and ending.failed:
        target = AssignmentStatus.CANCELLED
        values.update(completed_at=clock.now, error_message=ending.message or "stopped on request")
        reason = "stopped on request"
    elif not ending.failed:
        target = AssignmentStatus.COMPLETED
        values.update(progress=100.0, completed_at=clock.now, error_message=None, eta_at=None)
        reason = ending.message or "finished"
    else:
        policy = FailurePolicy(row["max_attempts"], row["retry_fatal"])
        target = after_failure(attempts=row["attempts"], policy=policy, exit_code=ending.exit_code)
        values["error_message"] = ending.message or f"exit code {ending.exit_code}"
        if target == AssignmentStatus.PENDING:
            values.update(BACK_TO_PENDING)
            reason = f"retry after failure: {values['error_message']}"
        else:
            values["completed_at"] = clock.now
            reason = values["error_message"]
    values["status"] = target
    conn.execute(update(assignments).where(assignments.c.id == assignment_id).values(**values))
    _record_event(
        conn,
        assignment_id,
        actor=actor,
        from_status=row["status"],
        to_status=target,
        reason=reason,
        now=clock.now,
        worker_id=worker_id,
    )
    return str(row["super_study_id"])


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
    _record_event(
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
    assignment: dict[str, Any]
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
    return Claimed(assignment_dict(conn, assignment_id), changes)


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
        return Claimed(assignment_dict(conn, mine.id), changes)
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
        .limit(8)
        .with_for_update(of=assignments, skip_locked=True)
    )
    for row in conn.execute(candidates).mappings().all():
        if _take(conn, row, worker, clock):
            changes.studies.add(row["super_study_id"])
            return Claimed(assignment_dict(conn, row["id"]), changes)
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
        _record_event(
            conn,
            row["id"],
            actor="server",
            from_status=row["status"],
            to_status=target,
            reason=reason,
            now=clock.now,
            worker_id=row["worker_id"],
        )
        changes.studies.add(row["super_study_id"])
    return len(expired)


# -- super studies -----------------------------------------------------------------------------


def _live_study_by_name(conn: Connection, name: str) -> RowMapping | None:
    return (
        conn.execute(
            select(super_studies).where(super_studies.c.name == name, super_studies.c.deleted_at.is_(None))
        )
        .mappings()
        .first()
    )


def create_super_study(
    conn: Connection,
    *,
    name: str,
    description: str | None,
    base_config: Any,
    split_configs: Sequence[Mapping[Any, Any]],
    sizes: Sequence[int] | None = None,
    parent_configs: Mapping[Any, Any] | None = None,
    split_strategy: str | None = None,
    max_attempts: int = 3,
    retry_fatal: bool = False,
    replace: bool = False,
    now: float,
) -> str:
    existing = _live_study_by_name(conn, name)
    if existing is not None:
        if not replace:
            raise Conflict(f"A super study named {name!r} already exists (id {existing['id']})")
        delete_super_study(conn, existing["id"])
    study_id = new_id()
    conn.execute(
        insert(super_studies).values(
            id=study_id,
            name=name,
            description=description,
            base_config=base_config,
            parent_configs=dict(parent_configs) if parent_configs else None,
            split_strategy=split_strategy,
            max_attempts=max_attempts,
            retry_fatal=retry_fatal,
            created_at=now,
            updated_at=now,
        )
    )
    if split_configs:
        conn.execute(
            insert(assignments),
            [
                {
                    "id": new_id(),
                    "super_study_id": study_id,
                    "index": index,
                    "status": AssignmentStatus.PENDING,
                    "split_config": dict(config),
                    "size": sizes[index] if sizes else 1,
                    "created_at": now,
                    "updated_at": now,
                }
                for index, config in enumerate(split_configs)
            ],
        )
    return study_id


def delete_super_study(conn: Connection, study_id: str) -> list[str]:
    """Delete a study with its assignments; returns the assignment ids whose artifacts to remove."""
    found = conn.execute(select(super_studies.c.id).where(super_studies.c.id == study_id)).first()
    if found is None:
        raise NotFound(f"Super study {study_id} not found")
    ids = list(
        conn.execute(select(assignments.c.id).where(assignments.c.super_study_id == study_id)).scalars()
    )
    if ids:
        conn.execute(
            update(workers).where(workers.c.current_assignment_id.in_(ids)).values(current_assignment_id=None)
        )
        conn.execute(delete(result_files).where(result_files.c.assignment_id.in_(ids)))
        conn.execute(delete(assignment_events).where(assignment_events.c.assignment_id.in_(ids)))
        conn.execute(delete(assignments).where(assignments.c.super_study_id == study_id))
    conn.execute(delete(super_studies).where(super_studies.c.id == study_id))
    return ids


def study_summaries(conn: Connection, study_ids: Iterable[str]) -> dict[str, StudySummary]:
    ids = list(study_ids)
    if not ids:
        return {}
    rows = conn.execute(
        select(
            assignments.c.super_study_id,
            assignments.c.status,
            assignments.c.progress,
            assignments.c.size,
        ).where(assignments.c.super_study_id.in_(ids))
    ).all()
    grouped: dict[str, list[AssignmentView]] = {study_id: [] for study_id in ids}
    for row in rows:
        grouped[row.super_study_id].append(AssignmentView(row.status, row.progress, row.size))
    cancelled = dict(
        conn.execute(
            select(super_studies.c.id, super_studies.c.cancelled_at).where(super_studies.c.id.in_(ids))
        ).all()
    )
    return {
        study_id: summarize_study(views, cancelled=cancelled.get(study_id) is not None)
        for study_id, views in grouped.items()
    }


def list_super_studies(conn: Connection, name: str | None = None) -> list[dict[str, Any]]:
    query = select(super_studies).where(super_studies.c.deleted_at.is_(None))
    if name is not None:
        query = query.where(super_studies.c.name == name)
    rows = conn.execute(query.order_by(super_studies.c.created_at.desc())).mappings().all()
    summaries = study_summaries(conn, [row["id"] for row in rows])
    brief = _assignment_briefs(conn, [row["id"] for row in rows])
    return [
        {
            **_study_dict(row, summaries[row["id"]], include_config=False),
            "assignments": brief.get(row["id"], []),
        }
        for row in rows
    ]


def _assignment_briefs(conn: Connection, study_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    if not study_ids:
        return out
    rows = conn.execute(
        select(assignments.c.id, assignments.c.super_study_id, assignments.c.status, assignments.c.worker_id)
        .where(assignments.c.super_study_id.in_(study_ids))
        .order_by(assignments.c.index)
    ).all()
    for row in rows:
        out.setdefault(row.super_study_id, []).append(
            {"id": row.id, "status": row.status, "workerId": row.worker_id}
        )
    return out


def require_study(conn: Connection, study_id: str) -> RowMapping:
    row = (
        conn.execute(
            select(super_studies).where(super_studies.c.id == study_id, super_studies.c.deleted_at.is_(None))
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"Super study {study_id} not found")
    return row


def get_super_study(conn: Connection, study_id: str, *, now: float | None = None) -> dict[str, Any]:
    """One study with its assignments, their event history and the campaign's ETA."""
    row = require_study(conn, study_id)
    summary = study_summaries(conn, [study_id])[study_id]
    data = {**_study_dict(row, summary, include_config=True), "assignments": list_assignments(conn, study_id)}
    data["events"] = study_events(conn, study_id)
    if now is not None:
        estimate = estimate_study(study_timings(conn, study_id), now=now)
        data["eta"] = iso(estimate.finish_at)
        data["etaSeconds"] = estimate.eta_seconds
        data["simulationsPerHour"] = estimate.simulations_per_hour
        data["remainingSimulations"] = estimate.remaining_simulations
    return data


def _study_dict(row: Mapping[Any, Any], summary: StudySummary, *, include_config: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "status": summary.status.value,
        "totalAssignments": summary.total,
        "completedAssignments": summary.completed,
        "failedAssignments": summary.counts.get(AssignmentStatus.FAILED, 0),
        "cancelledAssignments": summary.counts.get(AssignmentStatus.CANCELLED, 0),
        "runningAssignments": summary.counts.get(AssignmentStatus.RUNNING, 0),
        "pendingAssignments": summary.counts.get(AssignmentStatus.PENDING, 0),
        "masterProgress": summary.master_progress,
        "splitStrategy": row["split_strategy"],
        "maxAttempts": row["max_attempts"],
        "retryFatal": row["retry_fatal"],
        "cancelledAt": iso(row["cancelled_at"]),
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }
    if include_config:
        data["baseConfig"] = row["base_config"]
        data["parentConfigs"] = row["parent_configs"] or {}
    return data


def list_assignments(conn: Connection, study_id: str) -> list[dict[str, Any]]:
    rows = (
        conn.execute(
            select(assignments, workers.c.hostname, workers.c.machine_label)
            .outerjoin(workers, workers.c.id == assignments.c.worker_id)
            .where(assignments.c.super_study_id == study_id)
            .order_by(assignments.c.index)
        )
        .mappings()
        .all()
    )
    return [_assignment_dict(row) for row in rows]


def assignment_dict(conn: Connection, assignment_id: str) -> dict[str, Any]:
    row = (
        conn.execute(
            select(assignments, workers.c.hostname, workers.c.machine_label)
            .outerjoin(workers, workers.c.id == assignments.c.worker_id)
            .where(assignments.c.id == assignment_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"Assignment {assignment_id} not found")
    data = _assignment_dict(row)
    study = conn.execute(
        select(super_studies.c.name, super_studies.c.base_config, super_studies.c.parent_configs).where(
            super_studies.c.id == row["super_study_id"]
        )
    ).first()
    if study is not None:
        data["superStudyName"] = study.name
        data["parentConfigs"] = study.parent_configs or {}
    return data


def _assignment_dict(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "superStudyId": row["super_study_id"],
        "index": row["index"],
        "status": row["status"],
        "splitConfig": row["split_config"],
        "size": row["size"],
        "workerId": row["worker_id"],
        "machineId": row["machine_id"],
        "workerHostname": row["hostname"],
        "workerLabel": row["machine_label"],
        "progress": row["progress"],
        "currentStage": row["stage"],
        "eta": iso(row["eta_at"]),
        "attempts": row["attempts"],
        "exitCode": row["exit_code"],
        "errorMessage": row["error_message"],
        "stopRequested": row["stop_requested"],
        "reservedFor": row["reserved_for"],
        "leaseExpiresAt": iso(row["lease_expires_at"]),
        "startedAt": iso(row["started_at"]),
        "completedAt": iso(row["completed_at"]),
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }


def assignment_events_for(conn: Connection, assignment_ids: Sequence[str]) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(assignment_events, assignments.c.index)
        .join(assignments, assignments.c.id == assignment_events.c.assignment_id)
        .where(assignment_events.c.assignment_id.in_(assignment_ids))
        .order_by(assignment_events.c.id)
    ).mappings()
    return [
        {
            "assignmentId": row["assignment_id"],
            "index": row["index"],
            "at": iso(row["ts"]),
            "actor": row["actor"],
            "from": row["from_status"],
            "to": row["to_status"],
            "reason": row["reason"],
        }
        for row in rows
    ]


# -- results -----------------------------------------------------------------------------------


def assignment_study_id(conn: Connection, assignment_id: str) -> str:
    found = conn.execute(
        select(assignments.c.super_study_id).where(assignments.c.id == assignment_id)
    ).first()
    if found is None:
        raise NotFound(f"Assignment {assignment_id} not found")
    return str(found.super_study_id)


def record_result_files(
    conn: Connection, assignment_id: str, files: Sequence[Mapping[Any, Any]], now: float
) -> str:
    """Index stored files; uploading the same (relativePath, name) again replaces the row."""
    study_id = assignment_study_id(conn, assignment_id)
    for item in files:
        conn.execute(
            delete(result_files).where(
                result_files.c.assignment_id == assignment_id,
                result_files.c.relative_path == item["relative_path"],
                result_files.c.filename == item["filename"],
            )
        )
    conn.execute(
        insert(result_files),
        [{"id": new_id(), "assignment_id": assignment_id, "created_at": now, **item} for item in files],
    )
    return study_id


def result_file_rows(
    conn: Connection, *, study_id: str | None = None, assignment_id: str | None = None
) -> list[RowMapping]:
    query = select(result_files, assignments.c.index.label("assignment_index")).join(
        assignments, assignments.c.id == result_files.c.assignment_id
    )
    if study_id is not None:
        require_study(conn, study_id)
        query = query.where(assignments.c.super_study_id == study_id)
    if assignment_id is not None:
        assignment_study_id(conn, assignment_id)
        query = query.where(result_files.c.assignment_id == assignment_id)
    order = (result_files.c.relative_path, result_files.c.filename, result_files.c.created_at)
    return list(conn.execute(query.order_by(*order)).mappings().all())


# -- screenshots -------------------------------------------------------------------------------


def record_screenshots(
    conn: Connection, machine_id: str, agent_id: str | None, shots: Sequence[Mapping[Any, Any]], clock: Clock
) -> Changes:
    changes = Changes()
    worker = resolve_worker(conn, machine_id, agent_id, clock, changes)
    for shot in shots:
        conn.execute(
            delete(screenshots).where(
                screenshots.c.worker_id == worker["id"], screenshots.c.tab == shot["tab"]
            )
        )
        conn.execute(insert(screenshots).values(worker_id=worker["id"], updated_at=clock.now, **shot))
    conn.execute(update(workers).where(workers.c.id == worker["id"]).values(last_seen=clock.now))
    _renew_lease(conn, worker, clock)
    changes.workers.add(worker["id"])
    return changes


def screenshot_row(conn: Connection, worker_id: str, tab: str) -> RowMapping:
    row = (
        conn.execute(
            select(screenshots).where(screenshots.c.worker_id == worker_id, screenshots.c.tab == tab)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"No screenshot of tab {tab!r} for worker {worker_id}")
    return row


# -- workers (read side) -----------------------------------------------------------------------


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _worker_dict(row: Mapping[Any, Any], clock: Clock) -> dict[str, Any]:
    online = _is_online(row, clock)
    status = row["status"] if online and not row["is_stale"] else WorkerStatus.OFFLINE
    has_state = (
        row["last_progress_at"] is not None or row["stage"] is not None or row["log_max_sequence"] >= 0
    )
    return {
        "id": row["id"],
        "ipAddress": row["machine_id"],
        "machineId": row["machine_id"],
        "agentId": row["agent_id"] or None,
        "hostname": row["hostname"],
        "status": status,
        "storedStatus": row["status"],
        "isStale": row["is_stale"],
        "lastSeen": iso(row["last_seen"]),
        "machineLabel": row["machine_label"],
        "gpuName": row["gpu_name"],
        "cpuCores": row["cpu_cores"],
        "totalRamGB": row["total_ram_gb"],
        "currentAssignmentId": row["current_assignment_id"],
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
        "lastProgressAt": iso(row["last_progress_at"]),
        "guiState": {
            "progress": row["progress"],
            "stageProgress": row["stage_progress"],
            "stage": row["stage"],
            "subStage": row["sub_stage"],
            "simulationCount": row["simulation_count"],
            "totalSimulations": row["total_simulations"],
            "currentCase": row["current_case"],
            "warningCount": row["warning_count"],
            "errorCount": row["error_count"],
            "eta": iso(row["eta_at"]),
            "finishedAt": iso(row["finished_at"]),
        }
        if has_state
        else None,
    }


def list_workers(conn: Connection, clock: Clock, *, include_stale: bool = False) -> list[dict[str, Any]]:
    query = select(workers)
    if not include_stale:
        query = query.where(~workers.c.is_stale)
    rows = conn.execute(query.order_by(workers.c.last_seen.desc())).mappings().all()
    return [_worker_dict(row, clock) for row in rows]


def get_worker(conn: Connection, worker_id: str, clock: Clock, *, recent_logs: int) -> dict[str, Any]:
    row = conn.execute(select(workers).where(workers.c.id == worker_id)).mappings().first()
    if row is None:
        raise NotFound(f"Worker {worker_id} not found")
    data = _worker_dict(row, clock)
    page = log_page(conn, worker_id, limit=recent_logs)
    if data["guiState"] is None:
        data["guiState"] = {}
    data["guiState"]["logMessages"] = page["logs"]
    data["olderLogsCursor"] = page["nextBefore"]
    data["assignments"] = [
        _assignment_dict(r)
        for r in conn.execute(
            select(assignments, workers.c.hostname, workers.c.machine_label)
            .outerjoin(workers, workers.c.id == assignments.c.worker_id)
            .where(
                or_(
                    assignments.c.worker_id == worker_id,
                    assignments.c.id.in_(
                        select(assignment_events.c.assignment_id).where(
                            assignment_events.c.worker_id == worker_id
                        )
                    ),
                )
            )
            .order_by(assignments.c.started_at.desc())
        ).mappings()
    ]
    data["screenshots"] = [
        {"tab": s.tab, "size": s.size, "updatedAt": iso(s.updated_at)}
        for s in conn.execute(
            select(screenshots.c.tab, screenshots.c.size, screenshots.c.updated_at)
            .where(screenshots.c.worker_id == worker_id)
            .order_by(screenshots.c.tab)
        )
    ]
    return data


def parse_cursor(cursor: str) -> tuple[int, int]:
    """A log cursor is `<order key>.<row id>`, as returned in `nextBefore`."""
    order_text, _, id_text = cursor.partition(".")
    return int(order_text), int(id_text)


def log_page(
    conn: Connection,
    worker_id: str,
    *,
    before: str | None = None,
    limit: int = 200,
    log_types: Sequence[str] = (),
    text: str | None = None,
) -> dict[str, Any]:
    """A page of log lines, newest page first, lines oldest first within the page."""
    query = select(
        log_lines.c.id, log_lines.c.ord, log_lines.c.ts, log_lines.c.log_type, log_lines.c.message
    ).where(log_lines.c.worker_id == worker_id)
    if before:
        order, row_id = parse_cursor(before)
        # A row-value comparison, so both databases walk the (worker_id, ord, id) index backwards.
        query = query.where(tuple_(log_lines.c.ord, log_lines.c.id) < tuple_(order, row_id))
    if log_types:
        query = query.where(log_lines.c.log_type.in_(list(log_types)))
    if text:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(func.lower(log_lines.c.message).like(f"%{escaped.lower()}%", escape="\\"))
    rows = conn.execute(query.order_by(log_lines.c.ord.desc(), log_lines.c.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = list(rows[:limit])
    rows.reverse()
    return {
        "logs": [
            {
                "message": r.message,
                "logType": r.log_type,
                "timestamp": iso(r.ts),
                "cursor": f"{r.ord}.{r.id}",
            }
            for r in rows
        ],
        "nextBefore": f"{rows[0].ord}.{rows[0].id}" if more and rows else None,
    }


def worker_exists(conn: Connection, worker_id: str) -> None:
    if conn.execute(select(workers.c.id).where(workers.c.id == worker_id)).first() is None:
        raise NotFound(f"Worker {worker_id} not found")


def worker_samples_since(
    conn: Connection, worker_id: str, since: float, limit: int = 5000
) -> list[dict[str, Any]]:
    worker_exists(conn, worker_id)
    rows = conn.execute(
        select(worker_samples)
        .where(worker_samples.c.worker_id == worker_id, worker_samples.c.ts >= since)
        .order_by(worker_samples.c.ts.desc())
        .limit(limit)
    ).mappings()
    samples = [
        {
            "t": iso(r["ts"]),
            "progress": r["progress"],
            "stageProgress": r["stage_progress"],
            "cpuPercent": r["cpu_percent"],
            "ramPercent": r["ram_percent"],
            "gpuPercent": r["gpu_percent"],
            "vramUsedGB": r["vram_used_gb"],
            "vramTotalGB": r["vram_total_gb"],
        }
        for r in rows
    ]
    samples.reverse()
    return samples


def set_worker_label(conn: Connection, worker_id: str, label: str | None, now: float) -> Changes:
    worker_exists(conn, worker_id)
    machine = conn.execute(select(workers.c.machine_id).where(workers.c.id == worker_id)).scalar_one()
    # The label names the machine, so every session of it carries the same one.
    conn.execute(
        update(workers).where(workers.c.machine_id == machine).values(machine_label=label, updated_at=now)
    )
    return Changes(workers={worker_id})


# -- actions on super studies and assignments ---------------------------------------------------


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


def cancel_study(conn: Connection, study_id: str, *, actor: str, now: float) -> Changes:
    """Cancel a study: PENDING pieces become CANCELLED, RUNNING ones are asked to stop.

    A running piece becomes CANCELLED when its worker reports the stopped run (or its lease
    lapses); one that completes in the meantime stays COMPLETED.
    """
    require_study(conn, study_id)
    changes = Changes(studies={study_id})
    conn.execute(
        update(super_studies)
        .where(super_studies.c.id == study_id, super_studies.c.cancelled_at.is_(None))
        .values(cancelled_at=now, updated_at=now)
    )
    rows = (
        conn.execute(
            select(assignments)
            .where(
                assignments.c.super_study_id == study_id,
                assignments.c.status.in_([AssignmentStatus.PENDING, AssignmentStatus.RUNNING]),
            )
            .with_for_update()
        )
        .mappings()
        .all()
    )
    for row in rows:
        if row["status"] == AssignmentStatus.PENDING:
            conn.execute(
                update(assignments)
                .where(assignments.c.id == row["id"])
                .values(
                    status=AssignmentStatus.CANCELLED, reserved_for=None, completed_at=now, updated_at=now
                )
            )
            _record_event(
                conn,
                row["id"],
                actor=actor,
                from_status=row["status"],
                to_status=AssignmentStatus.CANCELLED,
                reason="super study cancelled",
                now=now,
            )
        elif not row["stop_requested"]:
            conn.execute(
                update(assignments)
                .where(assignments.c.id == row["id"])
                .values(stop_requested=True, updated_at=now)
            )
            _record_event(
                conn,
                row["id"],
                actor=actor,
                from_status=row["status"],
                to_status=row["status"],
                reason="stop requested: super study cancelled",
                now=now,
                worker_id=row["worker_id"],
            )
            if row["worker_id"]:
                changes.workers.add(row["worker_id"])
    return changes


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
    _record_event(
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
    _record_event(
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


def study_events(conn: Connection, study_id: str) -> list[dict[str, Any]]:
    ids = list(
        conn.execute(select(assignments.c.id).where(assignments.c.super_study_id == study_id)).scalars()
    )
    return assignment_events_for(conn, ids) if ids else []


def study_timings(conn: Connection, study_id: str) -> list[AssignmentTiming]:
    rows = conn.execute(
        select(
            assignments.c.status,
            assignments.c.size,
            assignments.c.progress,
            assignments.c.started_at,
            assignments.c.eta_at,
        ).where(assignments.c.super_study_id == study_id)
    ).all()
    return [AssignmentTiming(r.status, r.size, r.progress, r.started_at, r.eta_at) for r in rows]


# -- live pages: reads for server/pages.py and server/stream.py ---------------------------------


def workers_by_ids(conn: Connection, worker_ids: Iterable[str], clock: Clock) -> list[dict[str, Any]]:
    """The read-API dicts of a few workers (stale sessions included), for live pushes.

    The stream re-reads only the workers that changed, so 100 busy workers cost one small query
    per push instead of a full `list_workers`.
    """
    ids = list(worker_ids)
    if not ids:
        return []
    rows = conn.execute(select(workers).where(workers.c.id.in_(ids))).mappings().all()
    return [_worker_dict(row, clock) for row in rows]


def max_log_line_id(conn: Connection) -> int:
    """The newest log row id: where a page's live log tail starts (a primary-key lookup)."""
    return int(conn.execute(select(func.max(log_lines.c.id))).scalar_one() or 0)


def log_lines_after(
    conn: Connection, after_id: int, limit: int = 5000, *, also_ids: Sequence[int] = ()
) -> list[dict[str, Any]]:
    """Log rows stored after row `after_id` (plus rows `also_ids`), in id order, for every worker.

    Reads a primary-key range, never a worker's whole index: cheap however long a worker's
    history is. `also_ids` re-asks for ids skipped earlier, which on PostgreSQL may commit after
    higher ones. Lines carry the same `cursor` as `log_page`, so pages can sort them in.
    """
    condition = log_lines.c.id > after_id
    if also_ids:
        condition = or_(condition, log_lines.c.id.in_(list(also_ids)))
    rows = conn.execute(
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
    return [
        {
            "rowId": r.id,
            "workerId": r.worker_id,
            "message": r.message,
            "logType": r.log_type,
            "timestamp": iso(r.ts),
            "cursor": f"{r.ord}.{r.id}",
        }
        for r in rows
    ]
