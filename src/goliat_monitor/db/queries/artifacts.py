"""Files workers upload: result files of assignments and the latest screenshot of each GUI tab.

The bytes live in the blob store (`goliat_monitor.blobs`); these rows index them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, insert, null, select, update

from goliat_monitor.db.queries.assignments import assignment_study_id
from goliat_monitor.db.queries.common import AnyRow, Changes, Clock, new_id
from goliat_monitor.db.queries.ingest import renew_lease, resolve_worker
from goliat_monitor.db.queries.studies import require_study
from goliat_monitor.db.tables import assignments, result_files, screenshots, workers
from goliat_monitor.errors import NotFound

# -- results -----------------------------------------------------------------------------------


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
    """Keep each shot as its tab's latest (a row per worker and field name); the worker was seen."""
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
    renew_lease(conn, worker, clock)
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


def screenshots_of(conn: Connection, worker_id: str) -> list[AnyRow]:
    """(tab, label, size, updated_at) of each tab the worker has a screenshot of, by field name."""
    return list(
        conn.execute(
            select(screenshots.c.tab, screenshots.c.label, screenshots.c.size, screenshots.c.updated_at)
            .where(screenshots.c.worker_id == worker_id)
            .order_by(screenshots.c.tab)
        ).all()
    )


# -- every stored blob ---------------------------------------------------------------------------


def stored_blobs(conn: Connection) -> list[AnyRow]:
    """(blob_key, size, sha256) of every blob the database indexes; screenshots have no sha256 (None)."""
    files = select(result_files.c.blob_key, result_files.c.size, result_files.c.sha256)
    shots = select(screenshots.c.blob_key, screenshots.c.size, null().label("sha256"))
    return list(conn.execute(files.union_all(shots)).all())
