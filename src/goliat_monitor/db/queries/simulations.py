"""A campaign's simulations: what the agent's "Simulation N/M" said, and the figures uploads held.

`record_simulation_start` runs on the ingest path (a `simulation_details` message), so it goes
through `Raw` and touches only the (assignment, number) primary key. The rest runs rarely: when an
assignment ends, when results are uploaded, and when the study page reads the map or the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, delete, func, insert, select, update

from goliat_monitor.db.queries.studies import require_study
from goliat_monitor.db.raw import Raw
from goliat_monitor.db.tables import (
    assignments,
    result_figures,
    result_files,
    simulation_runs,
    timing_samples,
)
from goliat_monitor.domain.result_figures import RESULT_FILES, ParsedResult, StoredFigures
from goliat_monitor.domain.simulations import AssignmentState, SimulationMark, folder_key

# -- written while a campaign runs --------------------------------------------------------------


def record_simulation_start(
    conn: Connection,
    assignment_id: str,
    worker_id: str,
    number: int,
    total: int | None,
    case: str | None,
    now: float,
) -> bool:
    """GOLIAT announced simulation `number` of the assignment: it runs, the earlier ones finished.

    A repeat of the announcement for the simulation already running on this worker changes
    nothing (GOLIAT's GUI and our agent may send it more than once). True when a row changed.
    """
    raw = Raw(conn)
    key = {"assignment_id": assignment_id, "number": number}
    row = raw.one(
        "SELECT worker_id, finished_at, failed_at FROM simulation_runs"
        " WHERE assignment_id = :assignment_id AND number = :number",
        key,
    )
    values = {**key, "worker_id": worker_id, "total": total, "case_label": (case or "")[:1024], "now": now}
    if row is None:
        raw.send(
            "INSERT INTO simulation_runs (assignment_id, number, worker_id, total, case_label, started_at)"
            " VALUES (:assignment_id, :number, :worker_id, :total, :case_label, :now)",
            values,
        )
    elif row["worker_id"] != worker_id or row["finished_at"] is not None or row["failed_at"] is not None:
        raw.send(
            "UPDATE simulation_runs SET worker_id = :worker_id, total = :total, case_label = :case_label,"
            " started_at = :now, finished_at = NULL, failed_at = NULL"
            " WHERE assignment_id = :assignment_id AND number = :number",
            values,
        )
    else:
        return False
    raw.send(
        "UPDATE simulation_runs SET finished_at = :now WHERE assignment_id = :assignment_id"
        " AND number < :number AND finished_at IS NULL AND failed_at IS NULL",
        values,
    )
    return True


def end_simulations(conn: Connection, assignment_id: str, *, failed: bool, now: float) -> None:
    """The assignment's run ended: the simulation it was running finished, or failed with it."""
    column = "failed_at" if failed else "finished_at"
    conn.execute(
        update(simulation_runs)
        .where(
            simulation_runs.c.assignment_id == assignment_id,
            simulation_runs.c.finished_at.is_(None),
            simulation_runs.c.failed_at.is_(None),
        )
        .values({column: now})
    )


def record_result_figures(
    conn: Connection,
    assignment_id: str,
    relative_path: str,
    parsed: Sequence[tuple[str, ParsedResult]],
    now: float,
) -> None:
    """Keep what each uploaded result file yielded; a file uploaded again replaces its row."""
    for filename, result in parsed:
        conn.execute(
            delete(result_figures).where(
                result_figures.c.assignment_id == assignment_id,
                result_figures.c.relative_path == relative_path,
                result_figures.c.filename == filename,
            )
        )
        conn.execute(
            insert(result_figures).values(
                assignment_id=assignment_id,
                relative_path=relative_path,
                filename=filename,
                figures=None if result.error else dict(result.figures),
                error=result.error,
                created_at=now,
            )
        )


# -- read by the study page ---------------------------------------------------------------------


@dataclass(frozen=True)
class StudySimulationData:
    """Everything the map and the table are computed from, read in one transaction."""

    study: RowMapping
    configs: list[dict[str, Any]]
    assignments: list[AssignmentState]
    assignment_rows: list[RowMapping]
    marks: dict[tuple[int, int], SimulationMark]
    """By (assignment index, simulation number)."""
    result_paths: dict[str, float]
    """Each folder with uploaded files and the time of its newest upload."""
    figures: list[StoredFigures]


def study_simulation_data(conn: Connection, study_id: str) -> StudySimulationData:
    study = require_study(conn, study_id)
    rows = list(
        conn.execute(
            select(assignments).where(assignments.c.super_study_id == study_id).order_by(assignments.c.index)
        )
        .mappings()
        .all()
    )
    index_of = {row["id"]: row["index"] for row in rows}
    ids = list(index_of)
    marks: dict[tuple[int, int], SimulationMark] = {}
    paths: dict[str, float] = {}
    figures: list[StoredFigures] = []
    if ids:
        for mark in conn.execute(select(simulation_runs).where(simulation_runs.c.assignment_id.in_(ids))):
            marks[(index_of[mark.assignment_id], mark.number)] = SimulationMark(
                mark.number, mark.started_at, mark.worker_id, mark.finished_at, mark.failed_at
            )
        uploaded = conn.execute(
            select(result_files.c.relative_path, func.max(result_files.c.created_at))
            .where(result_files.c.assignment_id.in_(ids))
            .group_by(result_files.c.relative_path)
        ).all()
        for path, at in uploaded:  # one folder under its key, newest upload of any spelling
            key = folder_key(path)
            paths[key] = max(at, paths.get(key, at))
        for item in conn.execute(select(result_figures).where(result_figures.c.assignment_id.in_(ids))):
            figures.append(
                StoredFigures(item.relative_path, item.filename, item.figures, item.error, item.created_at)
            )
    return StudySimulationData(
        study=study,
        configs=[dict(row["split_config"]) for row in rows],
        assignments=[AssignmentState(r["id"], r["index"], r["status"], r["completed_at"]) for r in rows],
        assignment_rows=rows,
        marks=marks,
        result_paths=paths,
        figures=figures,
    )


def simulation_timings(conn: Connection, assignment_id: str, number: int) -> list[RowMapping]:
    """The profiler durations the agent reported for one simulation of an assignment, oldest first."""
    return list(
        conn.execute(
            select(
                timing_samples.c.phase,
                timing_samples.c.subtask,
                timing_samples.c.seconds,
                timing_samples.c.ts,
            )
            .where(timing_samples.c.assignment_id == assignment_id, timing_samples.c.simulation == number)
            .order_by(timing_samples.c.id)
        )
        .mappings()
        .all()
    )


def folder_files(conn: Connection, study_id: str, relative_path: str) -> list[RowMapping]:
    """The files uploaded under one results folder of the study."""
    return list(
        conn.execute(
            select(result_files.c.filename, result_files.c.size, result_files.c.created_at)
            .join(assignments, assignments.c.id == result_files.c.assignment_id)
            .where(assignments.c.super_study_id == study_id, result_files.c.relative_path == relative_path)
            .order_by(result_files.c.filename)
        )
        .mappings()
        .all()
    )


def unparsed_result_files(conn: Connection, study_id: str, limit: int) -> list[RowMapping]:
    """Result files of the study with no parsed figures yet: uploaded before the server parsed them."""
    require_study(conn, study_id)
    parsed = and_(
        result_figures.c.assignment_id == result_files.c.assignment_id,
        result_figures.c.relative_path == result_files.c.relative_path,
        result_figures.c.filename == result_files.c.filename,
    )
    return list(
        conn.execute(
            select(
                result_files.c.assignment_id,
                result_files.c.relative_path,
                result_files.c.filename,
                result_files.c.blob_key,
                result_files.c.size,
            )
            .join(assignments, assignments.c.id == result_files.c.assignment_id)
            .outerjoin(result_figures, parsed)
            .where(
                assignments.c.super_study_id == study_id,
                result_files.c.filename.in_(RESULT_FILES),
                result_figures.c.assignment_id.is_(None),
            )
            .limit(limit)
        )
        .mappings()
        .all()
    )
