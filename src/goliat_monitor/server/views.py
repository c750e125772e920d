"""Rows to the JSON the API answers with, and the page views built on that JSON.

The database layer (`db/queries/`) returns rows; everything here decides field names (camelCase,
as GOLIAT's original dashboard named them), ISO times and nesting. Routers, pages and the live
stream all shape through these functions, so a worker or a study looks the same everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from goliat_monitor.db.queries.assignments import AssignmentWithStudy
from goliat_monitor.db.queries.common import AnyRow, Clock, is_online
from goliat_monitor.db.queries.logs import SearchPage
from goliat_monitor.db.queries.studies import StudyDetail, StudyListing
from goliat_monitor.db.queries.workers import LogPage, RunTimings, WorkerDetail, log_cursor
from goliat_monitor.domain import gui_state
from goliat_monitor.domain import timings as timing_views
from goliat_monitor.domain.cost import Cost, Pricing, WorkerCost
from goliat_monitor.domain.models import AssignmentStatus, WorkerStatus
from goliat_monitor.domain.scheduling import StudySummary, config_warnings
from goliat_monitor.server.overview import facets as overview_facets

STUDY_EVENTS_SHOWN = 300
"""The newest events of a study that its live assignment table carries."""
LIGHTS = {"RUNNING": "green", "IDLE": "yellow", "OFFLINE": "red", "ERROR": "red"}


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str | None) -> float | None:
    """The inverse of `iso`: a timestamp from an API time string."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# -- workers -----------------------------------------------------------------------------------


def money(value: float | None) -> float | None:
    """Costs and hours in the API: rounded to what a person reads, not float noise."""
    return None if value is None else round(value, 4)


def worker_cost(worker: dict[str, Any], spent: WorkerCost, pricing: Pricing) -> dict[str, Any]:
    """A worker dict with its busy (`gpuHours`, `cost`) and idle hours and cost (domain/cost.py)."""
    own = worker.get("pricePerHour")
    return {
        **worker,
        "gpuHours": money(spent.gpu_hours),
        "cost": money(spent.cost),
        "idleHours": money(spent.idle_hours),
        "idleCost": money(spent.idle_cost),
        "currency": pricing.currency,
        "effectivePricePerHour": pricing.default_price if own is None else own,
    }


def worker(
    row: Mapping[Any, Any], clock: Clock, spent: WorkerCost | None = None, pricing: Pricing | None = None
) -> dict[str, Any]:
    """A worker session as the API shows it; with `spent` and `pricing`, its hours and cost too."""
    data = _worker(row, clock)
    if spent is not None and pricing is not None:
        data = worker_cost(data, spent, pricing)
    return data


def workers(
    rows: Iterable[Mapping[Any, Any]], clock: Clock, spent: Mapping[str, WorkerCost], pricing: Pricing
) -> list[dict[str, Any]]:
    """Worker sessions with their hours and cost (`db.queries.costs.worker_costs` of the same rows)."""
    return [worker(row, clock, spent.get(row["id"]), pricing) for row in rows]


def _worker(row: Mapping[Any, Any], clock: Clock) -> dict[str, Any]:
    online = is_online(row, clock)
    status = row["status"] if online and not row["is_stale"] else WorkerStatus.OFFLINE
    has_state = (
        row["last_progress_at"] is not None or row["stage"] is not None or row["log_newest"] is not None
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
        "pricePerHour": row["price_per_hour"],
        "gpuName": row["gpu_name"],
        "cpuCores": row["cpu_cores"],
        "totalRamGB": row["total_ram_gb"],
        "currentAssignmentId": row["current_assignment_id"],
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
        "lastProgressAt": iso(row["last_progress_at"]),
        # `goliat parallel`: studies sending logs under this one machine id right now.
        "concurrentStudies": gui_state.concurrent_studies(
            gui_state.streams_from_json(row["log_streams"]), now=clock.now
        ),
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


def worker_detail(
    detail: WorkerDetail, clock: Clock, spent: WorkerCost | None = None, pricing: Pricing | None = None
) -> dict[str, Any]:
    """`GET /api/workers/{id}`: the worker with its recent log lines, assignments and screenshots."""
    data = worker(detail.row, clock, spent, pricing)
    page = log_page(detail.logs)
    if data["guiState"] is None:
        data["guiState"] = {}
    data["guiState"]["logMessages"] = page["logs"]
    data["olderLogsCursor"] = page["nextBefore"]
    data["assignments"] = [assignment(row) for row in detail.assignments]
    data["screenshots"] = [
        {"tab": s.tab, "label": s.label, "size": s.size, "updatedAt": iso(s.updated_at)}
        for s in detail.screenshots
    ]
    return data


def log_line(row: AnyRow) -> dict[str, Any]:
    """One log line; its `cursor` sorts it among the others in GOLIAT's order."""
    return {
        "message": row.message,
        "logType": row.log_type,
        "timestamp": iso(row.ts),
        "cursor": log_cursor(row.ord, row.id),
    }


def log_page(page: LogPage) -> dict[str, Any]:
    return {"logs": [log_line(row) for row in page.lines], "nextBefore": page.next_before}


def log_search(page: SearchPage) -> dict[str, Any]:
    """`GET /api/logs`: each hit with its worker; a hit's `cursor` opens it in its worker's log
    (`/workers/{workerId}?line=CURSOR`) and, as `before`, continues the search below it."""
    hits = []
    for row in page.hits:
        worker = page.machines.get(row.worker_id)
        hits.append(
            {
                "workerId": row.worker_id,
                "machineId": worker.machine_id if worker else None,
                "workerName": (worker.machine_label or worker.hostname or worker.machine_id)
                if worker
                else row.worker_id,
                **log_line(row),
            }
        )
    return {"logs": hits, "nextBefore": hits[-1]["cursor"] if page.more and hits else None}


def sample(row: Mapping[Any, Any]) -> dict[str, Any]:
    """One point of a worker's progress and utilisation charts."""
    return {
        "t": iso(row["ts"]),
        "progress": row["progress"],
        "stageProgress": row["stage_progress"],
        "cpuPercent": row["cpu_percent"],
        "ramPercent": row["ram_percent"],
        "gpuPercent": row["gpu_percent"],
        "vramUsedGB": row["vram_used_gb"],
        "vramTotalGB": row["vram_total_gb"],
        "diskReadMBps": row["disk_read_mbps"],
        "diskWriteMBps": row["disk_write_mbps"],
        "pageFaultsPerSec": row["page_faults_per_sec"],
        "etaSeconds": row["eta_seconds"],
    }


def summary_line(gui: Mapping[str, Any] | None, stored_status: str) -> str:
    """GOLIAT's window title for a worker (`[61%] Sim 23/36 · Running`), from its API `guiState`."""
    state = gui or {}
    return timing_views.summary_line(
        progress=state.get("progress"),
        simulation_count=state.get("simulationCount"),
        total_simulations=state.get("totalSimulations"),
        finished=state.get("finishedAt") is not None,
        failed=stored_status == WorkerStatus.ERROR,
    )


def timings(run: RunTimings) -> dict[str, Any]:
    """`GET /api/workers/{id}/timings`: GOLIAT's Timings and Timings Piecharts tabs and its title."""
    samples = [timing_views.TimingSample(row.phase, row.subtask, row.seconds) for row in run.samples]
    row = run.worker
    summary = timing_views.summary_line(
        progress=row["progress"],
        simulation_count=row["simulation_count"],
        total_simulations=row["total_simulations"],
        finished=row["finished_at"] is not None,
        failed=row["status"] == WorkerStatus.ERROR,
    )
    return {
        "workerId": row["id"],
        "assignmentId": run.assignment_id,
        "sampleCount": len(samples),
        "table": [
            {
                "phase": r.phase,
                "subtask": r.subtask,
                "count": r.count,
                "mean": r.mean,
                "median": r.median,
                "min": r.minimum,
                "max": r.maximum,
                "p10": r.p10,
                "p25": r.p25,
                "p75": r.p75,
                "p90": r.p90,
            }
            for r in timing_views.timings_table(samples)
        ],
        "pies": [
            {
                "title": pie.title,
                "slices": [
                    {"key": part.key, "label": part.label, "seconds": part.seconds, "percent": part.percent}
                    for part in pie.slices
                ],
            }
            for pie in timing_views.pie_charts(samples)
        ],
        "summary": summary,
    }


# -- assignments -------------------------------------------------------------------------------


def assignment(row: Mapping[Any, Any]) -> dict[str, Any]:
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


def assignment_with_study(found: AssignmentWithStudy) -> dict[str, Any]:
    """`GET /api/assignments/{id}` and a claim's answer: what a worker needs to run the piece."""
    data = assignment(found.row)
    if found.study is not None:
        data["superStudyName"] = found.study.name
        data["parentConfigs"] = found.study.parent_configs or {}
    return data


def assignment_event(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "assignmentId": row["assignment_id"],
        "index": row["index"],
        "at": iso(row["ts"]),
        "actor": row["actor"],
        "from": row["from_status"],
        "to": row["to_status"],
        "reason": row["reason"],
    }


# -- super studies -----------------------------------------------------------------------------


def study_listing(listing: StudyListing) -> dict[str, Any]:
    """A study in `GET /api/super-studies`: no configs, assignments in brief."""
    return {
        **_study_dict(listing.row, listing.summary, include_config=False),
        "assignments": [
            {"id": row.id, "status": row.status, "workerId": row.worker_id} for row in listing.assignments
        ],
    }


def super_study(detail: StudyDetail) -> dict[str, Any]:
    """`GET /api/super-studies/{id}`: the study, every assignment, its history and its ETA."""
    data = {
        **_study_dict(detail.row, detail.summary, include_config=True),
        "assignments": [assignment(row) for row in detail.assignments],
    }
    if detail.cost is not None and detail.pricing is not None:
        data.update(_cost(detail.cost.total, detail.pricing))
        for item in data["assignments"]:
            spent = detail.cost.assignments.get(item["id"])
            if spent is not None:
                item.update(_cost(spent, detail.pricing))
    data["events"] = [assignment_event(row) for row in detail.events]
    data["warnings"] = config_warnings(
        ((row["index"], row["status"], row["split_config"] or {}) for row in detail.assignments),
        detail.row["parent_configs"] or {},
    )
    if detail.estimate is not None:
        data["eta"] = iso(detail.estimate.finish_at)
        data["etaSeconds"] = detail.estimate.eta_seconds
        data["simulationsPerHour"] = detail.estimate.simulations_per_hour
        data["remainingSimulations"] = detail.estimate.remaining_simulations
    return data


def _cost(spent: Cost, pricing: Pricing) -> dict[str, Any]:
    return {
        "gpuHours": money(spent.gpu_hours),
        "cost": money(spent.cost),
        "projectedCost": money(spent.projected_cost),
        "currency": pricing.currency,
    }


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


# -- what pages show: the API JSON plus lights, names and trimmed lists ------------------------


def worker_view(worker: dict[str, Any], *, now: float, stalled_after_s: float) -> dict[str, Any]:
    """A read-API worker dict plus what its card shows, so pages and pushes agree on the light
    and on the overview's filters, sort order and totals (`overview`, see server/overview.py).

    Stalled means online and RUNNING, but no progress message for `stalled_after_s`.
    """
    status = worker["status"]
    stalled = False
    if status == "RUNNING":
        since = parse_iso(worker.get("lastProgressAt") or worker.get("createdAt"))
        stalled = since is not None and now - since > stalled_after_s
    light = "amber" if stalled else LIGHTS.get(status, "red")
    name = worker.get("machineLabel") or worker.get("hostname") or worker.get("machineId") or worker["id"]
    view = {**worker, "stalled": stalled, "light": light, "displayName": name}
    view["summary"] = summary_line(worker.get("guiState"), worker.get("storedStatus") or status)
    view["overview"] = overview_facets(view, last_seen=parse_iso(worker.get("lastSeen")))
    return view


def study_summary(study: dict[str, Any]) -> dict[str, Any]:
    """A study without its configs, assignments and events: what a list row or card shows."""
    skip = {"baseConfig", "parentConfigs", "assignments", "events"}
    return {key: value for key, value in study.items() if key not in skip}


def assignment_rows(study: dict[str, Any]) -> list[dict[str, Any]]:
    """Assignments without their split configs (those can be large and no table shows them)."""
    return [{k: v for k, v in a.items() if k != "splitConfig"} for a in study.get("assignments", [])]


def study_detail(study: dict[str, Any]) -> dict[str, Any]:
    events = study.get("events") or []
    return {
        "id": study["id"],
        "assignments": assignment_rows(study),
        "events": events[-STUDY_EVENTS_SHOWN:],
        "eventCount": len(events),
    }
