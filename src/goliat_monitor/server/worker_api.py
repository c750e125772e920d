"""The calls GOLIAT's client (and the goliat-monitor agent) make: ingest, claim and upload.

Every success is exactly HTTP 200, the only status GOLIAT's client accepts.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from goliat_monitor.blobs import StoredBlob
from goliat_monitor.db.queries import artifacts, ingest, simulations
from goliat_monitor.db.queries import assignments as assignment_queries
from goliat_monitor.db.queries.common import Changes
from goliat_monitor.domain.paths import check_filename, check_relative_path, tab_label
from goliat_monitor.domain.result_figures import (
    MAX_RESULT_BYTES,
    RESULT_FILES,
    ParsedResult,
    parse_result_file,
)
from goliat_monitor.errors import ApiError, BadRequest, TooLarge
from goliat_monitor.protocol import (
    ClaimRequest,
    GuiUpdate,
    GuiUpdateBatch,
    GuiUpdateBatchResponse,
    Heartbeat,
    HeartbeatResponse,
    MachineId,
    OkResponse,
    ScreenshotsRefused,
    ScreenshotsResponse,
)
from goliat_monitor.server import views
from goliat_monitor.server.auth import require_worker
from goliat_monitor.server.context import ServerContext, get_context
from goliat_monitor.server.lean_route import LeanJsonRoute
from goliat_monitor.server.uploads import (
    ScreenshotKey,
    check_file_sizes,
    close_form_afterwards,
    form_text,
    guess_content_type,
    read_form,
    sort_screenshot_parts,
)

router = APIRouter(prefix="/api", tags=["worker protocol"], dependencies=[Depends(require_worker)])
# Heartbeats and GUI updates arrive by the thousand per second: they skip FastAPI's per-request
# dependency resolution and response re-validation (see lean_route).
ingest_router = APIRouter(
    prefix="/api",
    tags=["worker protocol"],
    dependencies=[Depends(require_worker)],
    route_class=LeanJsonRoute,
)

MULTIPART_RESULTS = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "relativePath": {
                            "type": "string",
                            "example": "far_field/thelonious/700MHz/x_pos_theta",
                        },
                    },
                }
            }
        },
        "required": True,
    }
}

MULTIPART_SCREENSHOTS = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["machineId"],
                    "properties": {"machineId": {"type": "string"}},
                    "additionalProperties": {"type": "string", "format": "binary"},
                }
            }
        },
        "required": True,
    }
}


@ingest_router.post("/heartbeat", response_model=HeartbeatResponse)
async def heartbeat(beat: Heartbeat, context: ServerContext = Depends(get_context)) -> dict[str, Any]:
    """Register or refresh a worker; carries system info and, from the agent, utilisation figures."""
    clock = context.clock()
    data = beat.model_dump()
    changes, stop = await context.db.write(
        lambda conn: ingest.record_heartbeat(conn, data, clock),
        key=beat.machineId,
        prepare=(ingest.lock_workers, ingest.session_of(beat.machineId, beat.agentId)),
    )
    context.ingest_counts.heartbeats += 1
    context.publish(changes)
    return {"success": True, "stopAssignmentIds": stop}


def _as_dict(update: GuiUpdate) -> dict[str, Any]:
    data = update.model_dump()
    data["message"] = update.message.model_dump()
    return data


@ingest_router.post("/gui-update", response_model=OkResponse)
async def gui_update(body: GuiUpdate, context: ServerContext = Depends(get_context)) -> dict[str, Any]:
    """One message from a worker's GUI queue: progress, logs, ETA, completion; unknown types are kept."""
    clock = context.clock()
    data = _as_dict(body)
    changes = await context.db.write(
        lambda conn: ingest.record_gui_update(conn, data, clock),
        key=body.machineId,
        prepare=(ingest.lock_workers, ingest.session_of(body.machineId, body.agentId)),
    )
    _count(context, changes)
    context.publish(changes)
    return {"success": True}


def _count(context: ServerContext, changes: Changes) -> None:
    """A committed GUI message, for `/metrics`: two int additions (see server/counters.py)."""
    counts = context.ingest_counts
    counts.gui_updates += 1
    counts.log_lines += changes.log_lines


@ingest_router.post("/gui-updates", response_model=GuiUpdateBatchResponse)
async def gui_updates(body: GuiUpdateBatch, context: ServerContext = Depends(get_context)) -> dict[str, Any]:
    """Many gui-update bodies in one request, applied in order: how an agent replays its spool.

    Each update is its own write (queued together, so they commit together and each rolls back
    alone); the answer is 200 with one result per update: 200, or the 4xx it would have got alone.
    """
    clock = context.clock()
    key = body.updates[0].machineId
    queued = [
        context.db.enqueue(
            partial(ingest.record_gui_update, update_=_as_dict(update), clock=clock),
            key=key,
            prepare=(ingest.lock_workers, ingest.session_of(update.machineId, update.agentId)),
        )
        for update in body.updates
    ]
    outcomes = await asyncio.gather(*queued, return_exceptions=True)
    results = []
    for outcome in outcomes:
        if isinstance(outcome, ApiError):
            results.append({"status": outcome.status_code, "error": outcome.message})
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            _count(context, outcome)
            context.publish(outcome)
            results.append({"status": 200, "error": None})
    return {"results": results}


@router.post(
    "/gui-screenshots",
    response_model=ScreenshotsResponse,
    responses={400: {"model": ScreenshotsRefused, "description": "No usable screenshot in the request"}},
    openapi_extra=MULTIPART_SCREENSHOTS,
    dependencies=[Depends(close_form_afterwards)],
)
async def gui_screenshots(request: Request, context: ServerContext = Depends(get_context)) -> Any:
    """The latest image of each GUI tab (one file part per tab, named by the tab); older ones are replaced.

    Each part is judged alone: the good ones are stored and the answer is 200, the only status
    GOLIAT's client accepts, listing the dropped parts and why. A request with no usable part is
    refused with 400: nothing was stored, and GOLIAT's client logs a refusal (never a 200), so that
    is the only way the reason reaches whoever runs GOLIAT.
    """
    form = await read_form(request)
    machine_id = form_text(form, "machineId", max_length=255)
    assert machine_id is not None
    agent_id = form_text(form, "agentId", required=False, max_length=64)
    parts = [(name, value) for name, value in form.multi_items() if isinstance(value, UploadFile)]
    if not parts:
        raise BadRequest("No screenshot files in the request")
    kept, dropped = await sort_screenshot_parts(parts, max_file_bytes=context.settings.max_file_bytes)
    dropped_json = [{"field": part.field, "reason": part.reason} for part in dropped]
    if not kept:
        reasons = "; ".join(f"{part.field}: {part.reason}" for part in dropped)
        refusal = ScreenshotsRefused(error=f"No usable screenshot ({reasons})", dropped=dropped_json)
        return JSONResponse(refusal.model_dump(), status_code=400)
    key = ScreenshotKey(machine_id, agent_id)
    stored = []
    for part in kept:
        blob = await _store(context, key.blob_key(part.field), part.upload)
        stored.append(
            {
                "tab": part.field,
                "label": tab_label(part.field),
                "blob_key": blob.key,
                "size": blob.size,
                "content_type": part.content_type,
            }
        )
    clock = context.clock()
    changes = await context.db.write(
        lambda conn: artifacts.record_screenshots(conn, machine_id, agent_id, stored, clock), key=machine_id
    )
    context.publish(changes)
    return {"success": True, "stored": [part.field for part in kept], "dropped": dropped_json}


@router.post("/assignments/{assignment_id}/claim")
async def claim(
    assignment_id: str, body: ClaimRequest, context: ServerContext = Depends(get_context)
) -> dict[str, Any]:
    """Claim one assignment. Exactly one machine wins; the winner may claim again (it retries)."""
    clock = context.clock()
    claimed = await context.db.write(
        lambda conn: assignment_queries.claim_assignment(
            conn, assignment_id, body.machineId, body.agentId, clock
        ),
        key=body.machineId,
    )
    context.publish(claimed.changes)
    return views.assignment_with_study(claimed.assignment)


@router.get("/assignment", responses={204: {"description": "No PENDING assignment"}})
async def next_assignment(
    machine_id: MachineId = Query(alias="machineId"),
    agent_id: str | None = Query(None, alias="agentId", max_length=64),
    context: ServerContext = Depends(get_context),
) -> Any:
    """The pull endpoint: claims and returns this worker's next assignment, or 204 when none is left."""
    clock = context.clock()
    claimed = await context.db.write(
        lambda conn: assignment_queries.claim_next(conn, machine_id, agent_id, clock), key=machine_id
    )
    if claimed is None:
        return Response(status_code=204)
    context.publish(claimed.changes)
    return views.assignment_with_study(claimed.assignment)


@router.post(
    "/assignments/{assignment_id}/results",
    response_model=OkResponse,
    openapi_extra=MULTIPART_RESULTS,
    dependencies=[Depends(close_form_afterwards)],
)
async def upload_results(
    assignment_id: str, request: Request, context: ServerContext = Depends(get_context)
) -> dict[str, Any]:
    """Result files of one simulation: repeated `files` fields and one `relativePath`."""
    await context.db.read(lambda conn: assignment_queries.assignment_study_id(conn, assignment_id))
    form = await read_form(request)
    try:
        relative_path = check_relative_path(form_text(form, "relativePath", required=False) or "")
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    uploads = [value for value in form.getlist("files") if isinstance(value, UploadFile)]
    if not uploads:
        raise BadRequest("No files in the request (field name: files)")
    names = []
    for upload in uploads:
        try:
            names.append(check_filename(upload.filename or ""))
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
    check_file_sizes(uploads, max_file_bytes=context.settings.max_file_bytes)
    total = sum(upload.size or 0 for upload in uploads)
    if total > context.settings.max_request_bytes:
        raise TooLarge(f"Upload is larger than {context.settings.max_request_bytes} bytes")
    prefix = f"results/{assignment_id}/{relative_path}".rstrip("/")
    rows = []
    parsed: list[tuple[str, ParsedResult]] = []
    for name, upload in zip(names, uploads, strict=True):
        blob = await _store(context, f"{prefix}/{name}", upload)
        if name in RESULT_FILES:
            parsed.append((name, await _parse_figures(name, upload, blob.size)))
        rows.append(
            {
                "relative_path": relative_path,
                "filename": name,
                "size": blob.size,
                "sha256": blob.sha256,
                "blob_key": blob.key,
                "content_type": guess_content_type(name),
            }
        )
    now = context.now()

    def record(conn: Any) -> str:
        study_id = artifacts.record_result_files(conn, assignment_id, rows, now)
        simulations.record_result_figures(conn, assignment_id, relative_path, parsed, now)
        return study_id

    study_id = await context.db.write(record)
    context.events.publish("results", {"id": study_id, "assignmentId": assignment_id})
    return {"success": True}


async def _parse_figures(name: str, upload: UploadFile, size: int) -> ParsedResult:
    """The figures of a GOLIAT result file, read once now; a file past the limit is not read."""
    if size > MAX_RESULT_BYTES:
        return ParsedResult({}, f"{name} is larger than {MAX_RESULT_BYTES} bytes and was not read")
    await upload.seek(0)
    data = await upload.read(MAX_RESULT_BYTES + 1)
    return parse_result_file(name, data)


async def _store(context: ServerContext, key: str, upload: UploadFile) -> StoredBlob:
    await upload.seek(0)
    return await to_thread.run_sync(context.blobs.put, key, upload.file)
