"""A campaign's simulations and results: the simulation map, the results table, comparisons.

Everything is computed from the split configs and two small tables filled as the campaign runs
(`simulation_runs` from the agent's "Simulation N/M", `result_figures` from each uploaded
result file, parsed once on upload): no request reads a result file.
"""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy import Connection

from goliat_monitor.blobs import BlobStore
from goliat_monitor.db.queries import simulations as simulation_queries
from goliat_monitor.domain.result_figures import MAX_RESULT_BYTES, ParsedResult, parse_result_file
from goliat_monitor.errors import BadRequest
from goliat_monitor.server import simulation_views
from goliat_monitor.server.context import ServerContext, get_context

router = APIRouter(prefix="/api", tags=["campaign results"])

BACKFILL_BATCH = 200
"""Most result files one request parses that were uploaded before the server parsed uploads."""


def _campaign(conn: Connection, study_id: str) -> simulation_views.Campaign:
    return simulation_views.campaign(simulation_queries.study_simulation_data(conn, study_id))


@router.get("/super-studies/{study_id}/simulations")
async def list_simulations(
    study_id: str, context: ServerContext = Depends(get_context)
) -> list[dict[str, Any]]:
    """Every simulation of the campaign, in GOLIAT's run order per assignment, with its status.

    PENDING, RUNNING (the agent's parsed "Simulation N/M"), DONE (results uploaded under its
    folder, or the run went past it) or FAILED (its assignment's run failed while it ran).
    """
    return await context.db.read(lambda conn: simulation_views.simulations(_campaign(conn, study_id)))


@router.get("/super-studies/{study_id}/simulations/detail")
async def simulation_detail(
    study_id: str, key: str = Query(..., max_length=2048), context: ServerContext = Depends(get_context)
) -> dict[str, Any]:
    """One simulation with its uploaded files, its profiler timings and where it is in its worker's log."""

    def read(conn: Connection) -> dict[str, Any]:
        campaign = _campaign(conn, study_id)
        sim = campaign.find(key)
        assignment = campaign.assignment(sim.assignment_index)
        files = simulation_queries.folder_files(conn, study_id, sim.result_path)
        timings = simulation_queries.simulation_timings(conn, assignment.id, sim.number) if assignment else []
        return simulation_views.detail(campaign, sim, files, timings)

    return await context.db.read(read)


@router.get(
    "/super-studies/{study_id}/results/table",
    responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv"}},
)
async def results_table(
    study_id: str,
    format: str = Query("json", pattern="^(json|csv)$"),
    context: ServerContext = Depends(get_context),
) -> Any:
    """One row per simulation with results: its identity and every figure of its result files.

    `columns` carry each column's name, label and unit, GOLIAT's known figures first;
    `unreadable` lists result files that could not be read (they never break the table).
    """
    await _parse_older_uploads(context, study_id)
    table = await context.db.read(lambda conn: simulation_views.table(_campaign(conn, study_id)))
    if format == "csv":
        return Response(
            simulation_views.table_csv(table),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="super-study-{study_id}-results.csv"'},
        )
    return table.as_json()


@router.get("/super-studies/{study_id}/results/compare", responses={409: {"description": "Shapes differ"}})
async def compare_results(
    study_id: str,
    with_: str = Query(..., alias="with", max_length=64),
    intersect: bool = False,
    context: ServerContext = Depends(get_context),
) -> dict[str, Any]:
    """The figures of this study and study `with` side by side per simulation, with relative differences.

    Both must be the same campaign shape (the same simulation keys: results folders without
    `run_tag`), else 409; `intersect=true` compares the simulations they share instead.
    """
    if with_ == study_id:
        raise BadRequest("Compare a super study with another one, not with itself")

    def read(conn: Connection) -> dict[str, Any]:
        return simulation_views.compare(
            _campaign(conn, study_id), _campaign(conn, with_), intersect=intersect
        )

    return await context.db.read(read)


def _read_bounded(blobs: BlobStore, key: str) -> bytes | None:
    """At most MAX_RESULT_BYTES + 1 bytes of a blob (runs in a worker thread), None when it is gone."""
    try:
        handle = blobs.open(key)
    except FileNotFoundError:
        return None
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= MAX_RESULT_BYTES and (chunk := handle.read(MAX_RESULT_BYTES + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
    finally:
        handle.close()
    return b"".join(chunks)


async def _parse_older_uploads(context: ServerContext, study_id: str) -> None:
    """Parse, once, result files uploaded before this server parsed uploads (migration 0010).

    Uploads since are parsed when they arrive, so after the first look this finds nothing.
    """
    rows = await context.db.read(
        lambda conn: simulation_queries.unparsed_result_files(conn, study_id, BACKFILL_BATCH)
    )
    if not rows:
        return
    parsed: dict[tuple[str, str], list[tuple[str, ParsedResult]]] = {}
    for row in rows:
        name = row["filename"]
        if row["size"] > MAX_RESULT_BYTES:
            result = ParsedResult({}, f"{name} is larger than {MAX_RESULT_BYTES} bytes and was not read")
        else:
            data = await to_thread.run_sync(_read_bounded, context.blobs, row["blob_key"])
            result = (
                ParsedResult({}, f"{name} is missing from the artifact store")
                if data is None
                else (parse_result_file(name, data))
            )
        parsed.setdefault((row["assignment_id"], row["relative_path"]), []).append((name, result))
    now = context.now()

    def write(conn: Connection) -> None:
        for (assignment_id, relative_path), files in parsed.items():
            simulation_queries.record_result_figures(conn, assignment_id, relative_path, files, now)

    await context.db.write(write)
