"""A campaign's simulations and results: the simulation map, the results table, comparisons.

Everything is computed from the split configs and two small tables filled as the campaign runs
(`simulation_runs` from the agent's "Simulation N/M", `result_figures` from each uploaded
result file, parsed once on upload): no request reads a result file.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy import Connection

from goliat_monitor.db.queries import simulations as simulation_queries
from goliat_monitor.errors import BadRequest
from goliat_monitor.server import simulation_views
from goliat_monitor.server.context import ServerContext, get_context

router = APIRouter(prefix="/api", tags=["campaign results"])


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
