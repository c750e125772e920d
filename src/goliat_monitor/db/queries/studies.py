"""Super studies: create, delete, cancel, and read them with their assignments and history."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, insert, select, update

from goliat_monitor.db.queries import costs, notifications
from goliat_monitor.db.queries.common import AnyRow, Changes, assignments_with_worker, new_id, record_event
from goliat_monitor.db.tables import (
    assignment_events,
    assignments,
    result_figures,
    result_files,
    simulation_runs,
    super_studies,
    workers,
)
from goliat_monitor.domain import notifications as notices
from goliat_monitor.domain.cost import Pricing, StudyCost
from goliat_monitor.domain.models import AssignmentStatus
from goliat_monitor.domain.progress import AssignmentTiming, StudyEta, estimate_study
from goliat_monitor.domain.scheduling import AssignmentView, StudySummary, summarize_study
from goliat_monitor.errors import Conflict, NotFound


@dataclass(frozen=True)
class StudyListing:
    """A study as the list shows it: its row, its summary and its assignments in brief."""

    row: RowMapping
    summary: StudySummary
    assignments: list[AnyRow]
    """(id, super_study_id, status, worker_id) of each assignment, by index."""


@dataclass(frozen=True)
class StudyDetail:
    """One study with every assignment (and its worker's name), its history and its ETA."""

    row: RowMapping
    summary: StudySummary
    assignments: list[RowMapping]
    events: list[RowMapping]
    estimate: StudyEta | None
    """None when the caller asked for no ETA (no `now`)."""
    cost: StudyCost | None = None
    """GPU-hours and cost, when the caller gave `now` and `pricing`."""
    pricing: Pricing | None = None


def _live_study_by_name(conn: Connection, name: str) -> RowMapping | None:
    return (
        conn.execute(
            select(super_studies).where(super_studies.c.name == name, super_studies.c.deleted_at.is_(None))
        )
        .mappings()
        .first()
    )


@dataclass(frozen=True)
class CreatedStudy:
    id: str
    replaced_id: str | None
    """The study of the same name it replaced (`replace=True`), deleted in the same transaction."""
    replaced_assignment_ids: list[str]
    """The replaced study's assignments, whose artifacts the caller removes after the commit."""


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
) -> CreatedStudy:
    existing = _live_study_by_name(conn, name)
    replaced: tuple[str, list[str]] | None = None
    if existing is not None:
        if not replace:
            raise Conflict(f"A super study named {name!r} already exists (id {existing['id']})")
        replaced = existing["id"], delete_super_study(conn, existing["id"])
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
    if replaced is None:
        return CreatedStudy(study_id, None, [])
    return CreatedStudy(study_id, *replaced)


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
        conn.execute(delete(result_figures).where(result_figures.c.assignment_id.in_(ids)))
        conn.execute(delete(simulation_runs).where(simulation_runs.c.assignment_id.in_(ids)))
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


def list_super_studies(conn: Connection, name: str | None = None) -> list[StudyListing]:
    query = select(super_studies).where(super_studies.c.deleted_at.is_(None))
    if name is not None:
        query = query.where(super_studies.c.name == name)
    rows = conn.execute(query.order_by(super_studies.c.created_at.desc())).mappings().all()
    summaries = study_summaries(conn, [row["id"] for row in rows])
    brief = _assignment_briefs(conn, [row["id"] for row in rows])
    return [StudyListing(row, summaries[row["id"]], brief.get(row["id"], [])) for row in rows]


def _assignment_briefs(conn: Connection, study_ids: list[str]) -> dict[str, list[AnyRow]]:
    out: dict[str, list[AnyRow]] = {}
    if not study_ids:
        return out
    rows = conn.execute(
        select(assignments.c.id, assignments.c.super_study_id, assignments.c.status, assignments.c.worker_id)
        .where(assignments.c.super_study_id.in_(study_ids))
        .order_by(assignments.c.index)
    ).all()
    for row in rows:
        out.setdefault(row.super_study_id, []).append(row)
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


def get_super_study(
    conn: Connection, study_id: str, *, now: float | None = None, pricing: Pricing | None = None
) -> StudyDetail:
    """One study with its assignments, their event history and (given `now`) the campaign's ETA
    and (given `pricing` too) its GPU-hours and cost."""
    row = require_study(conn, study_id)
    summary = study_summaries(conn, [study_id])[study_id]
    listed = list_assignments(conn, study_id)
    events = study_events(conn, study_id)
    estimate = estimate_study(study_timings(conn, study_id), now=now) if now is not None else None
    spent = None
    if now is not None and pricing is not None:
        spent = costs.study_cost(conn, listed, events, pricing=pricing, now=now)
    return StudyDetail(row, summary, listed, events, estimate, spent, pricing)


def list_assignments(conn: Connection, study_id: str) -> list[RowMapping]:
    """The study's assignments by index, each with its worker's hostname and label."""
    query = assignments_with_worker().where(assignments.c.super_study_id == study_id)
    return list(conn.execute(query.order_by(assignments.c.index)).mappings().all())


def assignment_events_for(conn: Connection, assignment_ids: Sequence[str]) -> list[RowMapping]:
    """The history of these assignments, oldest first, each event with its assignment's index."""
    return list(
        conn.execute(
            select(assignment_events, assignments.c.index)
            .join(assignments, assignments.c.id == assignment_events.c.assignment_id)
            .where(assignment_events.c.assignment_id.in_(assignment_ids))
            .order_by(assignment_events.c.id)
        )
        .mappings()
        .all()
    )


def study_events(conn: Connection, study_id: str) -> list[RowMapping]:
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


def note_if_ended(conn: Connection, study_id: str, now: float) -> None:
    """After an assignment of the study reached an end: notify once the whole study has ended.

    Called by the transaction that ended the assignment, so the notification exists exactly when
    the ending is committed. The study's row is locked first: two replicas that end its last two
    assignments at once then read the study one after the other, and the second sees it ended.
    """
    study = conn.execute(
        select(super_studies.c.name).where(super_studies.c.id == study_id).with_for_update()
    ).first()
    if study is None:
        return
    summary = study_summaries(conn, [study_id])[study_id]
    notice = notices.study_ended(
        study_id=study_id,
        name=study.name,
        status=summary.status,
        counts=summary.counts,
        total=summary.total,
        now=now,
    )
    if notice is not None:
        notifications.record(conn, notice, now)


def note_assignment_end(
    conn: Connection,
    row: Mapping[Any, Any],
    target: str,
    *,
    reason: str,
    out_of_memory: bool,
    now: float,
) -> None:
    """The notifications of an attempt that just ended (`row` is the assignment before it ended).

    A piece that failed for good or went back to the queue after running out of memory says so;
    one that reached an end may end its study. Only on these transitions, never per message.
    """
    if target == AssignmentStatus.RUNNING:
        return
    retried_oom = target == AssignmentStatus.PENDING and out_of_memory
    if target == AssignmentStatus.FAILED or retried_oom:
        facts = conn.execute(
            select(super_studies.c.name, super_studies.c.max_attempts).where(
                super_studies.c.id == row["super_study_id"]
            )
        ).first()
        worker = None
        if row["worker_id"]:
            found = conn.execute(
                select(workers.c.machine_label, workers.c.hostname, workers.c.machine_id).where(
                    workers.c.id == row["worker_id"]
                )
            ).first()
            if found is not None:
                worker = found.machine_label or found.hostname or found.machine_id
        name = facts.name if facts is not None else row["super_study_id"]
        if retried_oom:
            notice = notices.out_of_memory_retry(
                assignment_id=row["id"],
                study_id=row["super_study_id"],
                study_name=name,
                index=row["index"],
                attempts=row["attempts"],
                max_attempts=facts.max_attempts if facts is not None else row["attempts"],
                worker=worker,
                now=now,
            )
        else:
            notice = notices.assignment_failed(
                assignment_id=row["id"],
                study_id=row["super_study_id"],
                study_name=name,
                index=row["index"],
                attempts=row["attempts"],
                reason=reason,
                worker=worker,
                now=now,
            )
        notifications.record(conn, notice, now)
    if target != AssignmentStatus.PENDING:
        note_if_ended(conn, row["super_study_id"], now)


def cancel_study(conn: Connection, study_id: str, *, actor: str, now: float) -> Changes:
    """Cancel a study: PENDING pieces become CANCELLED, RUNNING ones are asked to stop.

    A running piece becomes CANCELLED when its worker reports the stopped run (or its lease
    lapses); one that completes in the meantime stays COMPLETED.
    """
    require_study(conn, study_id)
    changes = Changes(studies={study_id})
    newly = conn.execute(
        update(super_studies)
        .where(super_studies.c.id == study_id, super_studies.c.cancelled_at.is_(None))
        .values(cancelled_at=now, updated_at=now)
    ).rowcount
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
            record_event(
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
            record_event(
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
    if newly or rows:
        note_if_ended(conn, study_id, now)  # CANCELLED now, unless pieces still run
    return changes
