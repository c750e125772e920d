"""The ingest hot path: what a worker's heartbeat or GUI message does to the database.

GOLIAT sends thousands of these a second, so the statements here are hand-written SQL run
through `Raw` (no SQLAlchemy compilation per message) and each one is covered by an index; see
`tests/db/test_query_plans.py`. A worker's message can also end its assignment
(`end_assignment`), which is why that transition lives here and not in `assignments`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pydantic_core import to_json
from sqlalchemy import Connection, delete, insert, select, tuple_, update

from goliat_monitor.db import batching
from goliat_monitor.db.queries.common import BACK_TO_PENDING, Changes, Clock, is_online, new_id, record_event
from goliat_monitor.db.queries.simulations import end_simulations, record_simulation_start
from goliat_monitor.db.queries.studies import note_assignment_end
from goliat_monitor.db.raw import Raw
from goliat_monitor.db.tables import assignments, received_messages, super_studies, worker_messages, workers
from goliat_monitor.domain import gui_state
from goliat_monitor.domain.gui_state import Ending, Interpretation
from goliat_monitor.domain.models import AssignmentStatus, WorkerStatus
from goliat_monitor.domain.scheduling import FailurePolicy, after_failure
from goliat_monitor.errors import Conflict

RUNNING = "assignments.status = 'RUNNING'"
"""The condition of every write that touches an attempt only while it runs."""

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
    raw.send(
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


def resolve_worker(
    conn: Connection, machine_id: str, agent_id: str | None, clock: Clock, changes: Changes
) -> dict[str, Any]:
    """The live session of a machine (and agent), creating a new one when needed.

    A machine that comes back after being offline gets a new session (a new worker id, fresh GUI
    state); its RUNNING assignments follow it, so the assignment it was running is not orphaned.
    """
    agent = agent_id or ""
    cache = batching.group_cache(conn)
    if cache is not None:
        cached: dict[str, Any] | None = cache.get((machine_id, agent))
        if cached is not None and is_online(cached, clock):
            return cached
    raw = Raw(conn)
    row = raw.one(
        "SELECT * FROM workers WHERE machine_id = :machine_id AND agent_id = :agent_id"
        f" AND is_stale = {raw.false}{raw.for_update}",
        {"machine_id": machine_id, "agent_id": agent},
    )
    if row is not None and is_online(row, clock):
        return row
    label = price = None
    if row is not None:
        conn.execute(update(workers).where(workers.c.id == row["id"]).values(is_stale=True))
        changes.workers.add(row["id"])
        label, price = row["machine_label"], row["price_per_hour"]
    worker_id = new_id()
    conn.execute(
        insert(workers).values(
            id=worker_id,
            machine_id=machine_id,
            agent_id=agent,
            is_stale=False,
            status=WorkerStatus.IDLE,
            machine_label=label,
            price_per_hour=price,
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
    created = dict(conn.execute(select(workers).where(workers.c.id == worker_id)).mappings().one())
    _remember(conn, created)
    return created


def lock_workers(conn: Connection, sessions: list[tuple[str, str]]) -> None:
    """A write group's preparation: lock and read the live sessions all its messages touch, at once.

    Rows are locked in key order, so two replicas' groups cannot deadlock over them.
    """
    cache = batching.group_cache(conn)
    assert cache is not None, "only run as a group preparation"
    keys = to_json([{"machine_id": m, "agent_id": a} for m, a in set(sessions)]).decode()
    for row in Raw(conn).all(
        "SELECT * FROM workers WHERE is_stale = false AND (machine_id, agent_id) IN"
        " (SELECT machine_id, agent_id FROM json_populate_recordset(NULL::workers, :keys))"
        " ORDER BY machine_id, agent_id FOR UPDATE",
        {"keys": keys},
    ):
        cache[(row["machine_id"], row["agent_id"])] = row


def session_of(machine_id: str, agent_id: str | None) -> tuple[str, str]:
    """The argument of `lock_workers` for a message from this machine and agent."""
    return machine_id, agent_id or ""


def _remember(conn: Connection, row: dict[str, Any]) -> None:
    """Keep the group's copy of a worker row in step with what this transaction wrote to it."""
    cache = batching.group_cache(conn)
    if cache is not None:
        cache[(row["machine_id"], row["agent_id"])] = row


def renew_lease(conn: Connection, worker: Mapping[Any, Any], clock: Clock) -> None:
    """Push back the lease of the assignment `worker` runs: any message shows the run is alive."""
    if worker["current_assignment_id"]:
        Raw(conn).update(
            "assignments",
            {"id": worker["current_assignment_id"], "worker_id": worker["id"]},
            {"lease_expires_at": clock.now + clock.lease_timeout_s},
            where=RUNNING,
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
    raw.update("workers", {"id": worker["id"]}, values)
    _remember(conn, {**worker, **values})
    metrics = {
        "cpu_percent": beat.get("cpuPercent"),
        "ram_percent": beat.get("ramPercent"),
        "gpu_percent": beat.get("gpuPercent"),
        "vram_used_gb": beat.get("vramUsedGB"),
        "vram_total_gb": beat.get("vramTotalGB"),
        "disk_read_mbps": beat.get("diskReadMBps"),
        "disk_write_mbps": beat.get("diskWriteMBps"),
        "page_faults_per_sec": beat.get("pageFaultsPerSec"),
    }
    if any(value is not None for value in metrics.values()):
        raw.insert(
            "worker_samples", ("worker_id", "ts", *metrics), [(worker["id"], clock.now, *metrics.values())]
        )
    renew_lease(conn, worker, clock)
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
    sent_at = update_.get("timestamp")
    result = gui_state.interpret(message, now=clock.now, sent_at=sent_at)
    stamp_column = gui_state.PROGRESS_STAMPS.get(message["type"])
    if stamp_column and sent_at is not None:
        if gui_state.is_stale(sent_at, worker[stamp_column]):
            result = replace(result, changes={})  # still a sign of life, but the bar stays
        else:
            result = replace(result, changes={**result.changes, stamp_column: sent_at})
    if result.ending is not None and gui_state.echoes_ending(
        result.ending,
        previous_exit_code=worker["ended_exit_code"],
        ended_at=worker["ended_at"],
        now=clock.now,
        grace_s=clock.finish_grace_s,
    ):
        result = replace(result, ending=None)
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
        # The run a line belongs to, as for timings: the assignment the agent names, else the
        # one the worker holds (`GET /api/logs?study=` finds lines through it).
        _store_logs(conn, worker, result, values, clock, run=claimed_for or assignment_id)
        changes.log_workers.add(worker["id"])
        changes.log_lines += len(result.logs)
    if message["type"] == "timing":
        _store_timing(conn, worker, message, update_.get("assignmentId"), clock)
        changes.timing_workers.add(worker["id"])
    elif result.keep:
        conn.execute(
            insert(worker_messages).values(
                worker_id=worker["id"], ts=clock.now, type=message["type"], payload=dict(message)
            )
        )
    if "progress" in values or "stage_progress" in values:
        _maybe_sample(conn, worker, values, clock)
    run_of = claimed_for or assignment_id
    if run_of and message["type"] in SIMULATION_COUNTERS and result.changes:
        study_id = _simulation_started(conn, run_of, worker["id"], result.changes, clock)
        if study_id:
            changes.studies.add(study_id)

    if assignment_id and result.ending is None and (result.changes and reopen):
        study_id = _update_assignment_progress(conn, assignment_id, worker["id"], values, clock)
        if study_id:
            changes.studies.add(study_id)
    if result.ending is not None:
        values["finished_at"] = clock.now
        values["current_assignment_id"] = None
        values["ended_at"] = clock.now
        values["ended_exit_code"] = result.ending.exit_code
        # The next run's progress starts afresh, whatever its clock says.
        values["progress_sent_at"] = values["stage_sent_at"] = None
        if not result.ending.failed:
            values["progress"] = 100.0
        if assignment_id:
            study_id = end_assignment(
                conn, assignment_id, worker["id"], result.ending, clock, actor=update_["machineId"]
            )
            if study_id:
                changes.studies.add(study_id)
    Raw(conn).update("workers", {"id": worker["id"]}, values)
    _remember(conn, {**worker, **values})
    if values.get("current_assignment_id", assignment_id):
        renew_lease(conn, {**worker, **values}, clock)
    changes.workers.add(worker["id"])
    return changes


def _store_logs(
    conn: Connection,
    worker: Mapping[Any, Any],
    result: Interpretation,
    values: dict[str, Any],
    clock: Clock,
    *,
    run: str | None,
) -> None:
    """Insert a batch's lines under time-ordered keys; the order state goes into `values`.

    No lookup: the keys come from the lines' own times and the worker row already read.
    """
    order = gui_state.LogOrder(
        worker["log_floor"], worker["log_newest"], gui_state.streams_from_json(worker["log_streams"])
    )
    placed = gui_state.place_batch(
        order, [line.timestamp for line in result.logs], result.sequence, now=clock.now
    )
    warnings, errors = gui_state.count_logs(result.logs)
    warning_count, error_count = worker["warning_count"], worker["error_count"]
    if placed.later_run:
        warning_count = error_count = 0  # counted per run, as GOLIAT's window counts them
    values["log_floor"] = placed.order.floor
    values["log_newest"] = placed.order.newest
    if placed.order.streams != order.streams:
        values["log_streams"] = gui_state.streams_to_json(placed.order.streams)
    values["warning_count"] = warning_count + warnings
    values["error_count"] = error_count + errors
    Raw(conn).insert(
        "log_lines",
        ("worker_id", "ord", "ts", "log_type", "message", "assignment_id"),
        [
            (worker["id"], key, line.timestamp, line.log_type, line.message, run)
            for key, line in zip(placed.keys, result.logs, strict=True)
        ],
    )


def _store_timing(
    conn: Connection,
    worker: Mapping[Any, Any],
    message: Mapping[str, Any],
    claimed_for: str | None,
    clock: Clock,
) -> None:
    """Keep one profiler duration under the run it belongs to: the assignment the agent names, else
    the one the worker holds (a study started by hand has neither)."""
    Raw(conn).insert(
        "timing_samples",
        ("worker_id", "assignment_id", "ts", "phase", "subtask", "seconds", "simulation"),
        [
            (
                worker["id"],
                claimed_for or worker["current_assignment_id"],
                clock.now,
                message["phase"],
                message.get("subtask"),
                message["seconds"],
                message.get("simulation"),
            )
        ],
    )


SIMULATION_COUNTERS = frozenset({"simulation_details", "sim_details"})
"""GOLIAT's "Simulation N/M": the N-th simulation of the assignment's config is running."""


def _simulation_started(
    conn: Connection, assignment_id: str, worker_id: str, counter: Mapping[str, Any], clock: Clock
) -> str | None:
    """Mark simulation N of the assignment as running; the study id when the map changed."""
    number = counter.get("simulation_count")
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        return None
    total = counter.get("total_simulations")
    case = counter.get("current_case")
    if not record_simulation_start(
        conn,
        assignment_id,
        worker_id,
        number,
        total if isinstance(total, int) and not isinstance(total, bool) else None,
        case if isinstance(case, str) else None,
        clock.now,
    ):
        return None
    return study_of(conn, assignment_id)


def _maybe_sample(
    conn: Connection, worker: Mapping[Any, Any], values: Mapping[Any, Any], clock: Clock
) -> None:
    last = worker["last_sample_at"]
    if last is not None and clock.now - last < clock.sample_interval_s:
        return
    eta_at = values.get("eta_at", worker["eta_at"])
    Raw(conn).insert(
        "worker_samples",
        ("worker_id", "ts", "progress", "stage_progress", "eta_seconds"),
        [
            (
                worker["id"],
                clock.now,
                values.get("progress", worker["progress"]),
                values.get("stage_progress", worker["stage_progress"]),
                # The time remaining as GOLIAT estimated it then (its ETA is a moment, not a duration).
                None if eta_at is None else max(0.0, eta_at - clock.now),
            )
        ],
    )
    # Mutating the caller's dict is deliberate: the worker row update carries the sample time.
    assert isinstance(values, dict)
    values["last_sample_at"] = clock.now


def _update_assignment_progress(
    conn: Connection, assignment_id: str, worker_id: str, values: Mapping[Any, Any], clock: Clock
) -> str | None:
    """Copy the worker's progress onto the assignment it runs; the study id, for the pages' update."""
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
    Raw(conn).update("assignments", {"id": assignment_id, "worker_id": worker_id}, changes, where=RUNNING)
    return study_of(conn, assignment_id)


_STUDY_OF: dict[str, str] = {}
"""The study of each assignment seen lately: fixed for the assignment's life, so safe to keep."""
STUDY_OF_SIZE = 10_000


def study_of(conn: Connection, assignment_id: str) -> str | None:
    """The study an assignment belongs to, read once per assignment, not once per progress message."""
    study_id = _STUDY_OF.get(assignment_id)
    if study_id is None:
        study_id = Raw(conn).scalar(
            "SELECT super_study_id FROM assignments WHERE id = :id", {"id": assignment_id}
        )
        if study_id is None:
            return None
        if len(_STUDY_OF) >= STUDY_OF_SIZE:
            _STUDY_OF.clear()
        _STUDY_OF[assignment_id] = study_id
    return study_id


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
    if target != AssignmentStatus.CANCELLED:
        end_simulations(conn, assignment_id, failed=target != AssignmentStatus.COMPLETED, now=clock.now)
    record_event(
        conn,
        assignment_id,
        actor=actor,
        from_status=row["status"],
        to_status=target,
        reason=reason,
        now=clock.now,
        worker_id=worker_id,
    )
    note_assignment_end(
        conn,
        row,
        target,
        reason=values["error_message"] or reason,
        out_of_memory=ending.out_of_memory,
        now=clock.now,
    )
    return str(row["super_study_id"])
