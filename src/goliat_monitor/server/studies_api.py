"""Super studies: created by GOLIAT's `super_study` command (or ours), read by its `worker` command,
and their result files browsed and downloaded by people."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator, Sequence
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, RowMapping

from goliat_monitor.blobs import BlobStore, iter_chunks
from goliat_monitor.db.queries import artifacts
from goliat_monitor.db.queries import assignments as assignment_queries
from goliat_monitor.db.queries import studies as study_queries
from goliat_monitor.domain.results_tree import build_tree
from goliat_monitor.domain.splitting import STRATEGIES, SplitError, count_simulations, split_config
from goliat_monitor.errors import BadRequest, NotFound
from goliat_monitor.protocol import OkResponse
from goliat_monitor.server import views
from goliat_monitor.server.auth import client_address, require_admin
from goliat_monitor.server.context import ServerContext, get_context

router = APIRouter(prefix="/api", tags=["super studies"])


class NewAssignment(BaseModel):
    model_config = ConfigDict(extra="ignore")
    splitConfig: dict[str, Any]
    status: str | None = "PENDING"
    size: Annotated[int, Field(ge=1)] | None = None


class NewSuperStudy(BaseModel):
    """GOLIAT's `POST /api/super-studies` body; the fields after `assignments` are our extensions."""

    model_config = ConfigDict(extra="ignore")
    name: Annotated[str, Field(min_length=1, max_length=255)]
    description: Annotated[str, Field(max_length=10_000)] | None = None
    baseConfig: dict[str, Any] | None = None
    assignments: Annotated[list[NewAssignment], Field(max_length=100_000)]
    parentConfigs: dict[str, dict[str, Any]] | None = None
    splitStrategy: Annotated[str, Field(max_length=32)] | None = None
    maxAttempts: Annotated[int, Field(ge=1, le=100)] = 3
    retryFatal: bool = False
    replace: bool = False


def _size_of(config: dict[str, Any], parents: dict[str, dict[str, Any]]) -> int:
    """Simulations in one piece, so progress is weighted by work; GOLIAT sends no sizes.

    GOLIAT does not upload the parent config either; the split keys (phantoms, frequencies, ...)
    live in the config itself, so counting it without its parent is right in practice.
    """
    size = count_simulations(config, parents)
    if size is None and "extends" in config:
        size = count_simulations({key: value for key, value in config.items() if key != "extends"})
    return size or 1


@router.post("/super-studies", dependencies=[Depends(require_admin)])
async def create_super_study(
    body: NewSuperStudy, context: ServerContext = Depends(get_context)
) -> dict[str, Any]:
    """Create a study from configs split by the client. Answers 200 (GOLIAT treats 201 as failure)."""
    configs = [a.splitConfig for a in body.assignments]
    parents = body.parentConfigs or {}
    sizes = [a.size or _size_of(a.splitConfig, parents) for a in body.assignments]
    now = context.now()

    def create(conn: Connection) -> tuple[dict[str, Any], study_queries.CreatedStudy]:
        created = study_queries.create_super_study(
            conn,
            name=body.name,
            description=body.description,
            base_config=body.baseConfig,
            split_configs=configs,
            sizes=sizes,
            parent_configs=body.parentConfigs,
            split_strategy=body.splitStrategy,
            max_attempts=body.maxAttempts,
            retry_fatal=body.retryFatal,
            replace=body.replace,
            now=now,
        )
        study = study_queries.get_super_study(conn, created.id, now=now, pricing=context.pricing)
        return views.super_study(study), created

    study, created = await context.db.write(create)
    if created.replaced_id is not None:
        await _delete_artifacts(context, created.replaced_assignment_ids)
        context.events.publish("study", {"id": created.replaced_id, "deleted": True})
    context.events.publish("study", {"id": study["id"]})
    return study


@router.get("/super-studies")
async def list_super_studies(
    name: str | None = Query(None, max_length=255), context: ServerContext = Depends(get_context)
) -> list[dict[str, Any]]:
    """Every live super study (or those named `name`), newest first."""

    def read(conn: Connection) -> list[dict[str, Any]]:
        return [views.study_listing(listing) for listing in study_queries.list_super_studies(conn, name)]

    return await context.db.read(read)


@router.get("/super-studies/{study_id}")
async def get_super_study(study_id: str, context: ServerContext = Depends(get_context)) -> dict[str, Any]:
    """The study with its assignments, their event history, the campaign ETA, GPU-hours and cost."""
    now = context.now()

    def read(conn: Connection) -> dict[str, Any]:
        return views.super_study(
            study_queries.get_super_study(conn, study_id, now=now, pricing=context.pricing)
        )

    return await context.db.read(read)


@router.delete("/super-studies/{study_id}", response_model=OkResponse, dependencies=[Depends(require_admin)])
async def delete_super_study(study_id: str, context: ServerContext = Depends(get_context)) -> dict[str, Any]:
    """Delete a study, its assignments and their result files."""
    assignment_ids = await context.db.write(lambda conn: study_queries.delete_super_study(conn, study_id))
    await _delete_artifacts(context, assignment_ids)
    context.events.publish("study", {"id": study_id, "deleted": True})
    return {"success": True}


async def _delete_artifacts(context: ServerContext, assignment_ids: Sequence[str]) -> None:
    """The result files of deleted assignments, after the commit that deleted their rows."""
    for assignment_id in assignment_ids:
        # A network round trip per page of keys with an object store: never on the event loop.
        await to_thread.run_sync(context.blobs.delete_prefix, f"results/{assignment_id}")


@router.get("/super-studies/{study_id}/assignments")
async def list_assignments(
    study_id: str, context: ServerContext = Depends(get_context)
) -> list[dict[str, Any]]:
    def read(conn: Connection) -> list[dict[str, Any]]:
        study_queries.require_study(conn, study_id)
        return [views.assignment(row) for row in study_queries.list_assignments(conn, study_id)]

    return await context.db.read(read)


@router.get("/assignments/{assignment_id}", tags=["super studies"])
async def get_assignment(assignment_id: str, context: ServerContext = Depends(get_context)) -> dict[str, Any]:

    def read(conn: Connection) -> dict[str, Any]:
        return views.assignment_with_study(assignment_queries.get_assignment(conn, assignment_id))

    return await context.db.read(read)


# -- result files ------------------------------------------------------------------------------


def _file_path(row: RowMapping) -> str:
    return f"{row['relative_path']}/{row['filename']}" if row["relative_path"] else str(row["filename"])


def _latest_by_path(rows: Sequence[RowMapping]) -> dict[str, RowMapping]:
    """One file per path; if two assignments wrote the same path the newest upload wins."""
    latest: dict[str, RowMapping] = {}
    for row in rows:
        path = _file_path(row)
        if path not in latest or row["created_at"] >= latest[path]["created_at"]:
            latest[path] = row
    return latest


def _listing(rows: Sequence[RowMapping]) -> dict[str, Any]:
    files = _latest_by_path(rows)
    return {
        "tree": build_tree((path, row["size"]) for path, row in sorted(files.items())),
        "totalFiles": len(files),
        "totalSize": sum(row["size"] for row in files.values()),
        "files": [
            {
                "path": path,
                "size": row["size"],
                "sha256": row["sha256"],
                "contentType": row["content_type"],
                "assignmentId": row["assignment_id"],
                "assignmentIndex": row["assignment_index"],
                "uploadedAt": views.iso(row["created_at"]),
            }
            for path, row in sorted(files.items())
        ],
    }


_ACTIVE_CONTENT = ("text/html", "image/svg+xml", "application/xhtml+xml", "text/xml", "application/xml")


async def _file_response(context: ServerContext, rows: Sequence[RowMapping], path: str) -> StreamingResponse:
    row = _latest_by_path(rows).get(path.strip("/"))
    handle = None if row is None else await context.open_blob(row["blob_key"])
    if row is None or handle is None:
        raise NotFound(f"No result file at {path!r}")
    name = row["filename"].replace('"', "")
    # An uploaded HTML or SVG report would run on the dashboard's origin if shown inline.
    disposition = "attachment" if row["content_type"].startswith(_ACTIVE_CONTENT) else "inline"
    return StreamingResponse(
        iter_chunks(handle),
        media_type=row["content_type"],
        headers={
            "Content-Length": str(row["size"]),
            "Content-Disposition": f'{disposition}; filename="{name}"',
            "Content-Security-Policy": "sandbox",
            "X-Content-Type-Options": "nosniff",
        },
    )


class _ZipSink(io.RawIOBase):
    """A write-only stream that hands out what zipfile wrote so far: the zip is never in memory."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def _zip_stream(blobs: BlobStore, rows: Sequence[RowMapping]) -> Iterator[bytes]:
    """Runs in Starlette's thread pool (a sync iterator), so reading the store may block here."""
    sink = _ZipSink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path, row in sorted(_latest_by_path(rows).items()):
            try:
                handle = blobs.open(row["blob_key"])
            except FileNotFoundError:
                continue
            with archive.open(path, "w", force_zip64=True) as target:
                for chunk in iter_chunks(handle):
                    target.write(chunk)
                    if (data := sink.take()) != b"":
                        yield data
            yield sink.take()
    yield sink.take()


def _zip_response(blobs: BlobStore, rows: Sequence[RowMapping], filename: str) -> StreamingResponse:
    return StreamingResponse(
        _zip_stream(blobs, rows),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/super-studies/{study_id}/results/list")
async def study_results_list(study_id: str, context: ServerContext = Depends(get_context)) -> dict[str, Any]:
    """Every result file of the study as a tree by `relativePath`, with totals."""
    rows = await context.db.read(lambda conn: artifacts.result_file_rows(conn, study_id=study_id))
    return _listing(rows)


@router.get("/super-studies/{study_id}/results/file")
async def study_results_file(
    study_id: str, path: str = Query(..., max_length=2048), context: ServerContext = Depends(get_context)
) -> StreamingResponse:
    rows = await context.db.read(lambda conn: artifacts.result_file_rows(conn, study_id=study_id))
    return await _file_response(context, rows, path)


@router.get("/super-studies/{study_id}/results/download")
async def study_results_download(
    study_id: str, context: ServerContext = Depends(get_context)
) -> StreamingResponse:
    """A zip of every result file, streamed as it is built."""
    rows = await context.db.read(lambda conn: artifacts.result_file_rows(conn, study_id=study_id))
    return _zip_response(context.blobs, rows, f"super-study-{study_id}-results.zip")


@router.get("/assignments/{assignment_id}/results/list")
async def assignment_results_list(
    assignment_id: str, context: ServerContext = Depends(get_context)
) -> dict[str, Any]:
    rows = await context.db.read(lambda conn: artifacts.result_file_rows(conn, assignment_id=assignment_id))
    return _listing(rows)


@router.get("/assignments/{assignment_id}/results/file")
async def assignment_results_file(
    assignment_id: str, path: str = Query(..., max_length=2048), context: ServerContext = Depends(get_context)
) -> StreamingResponse:
    rows = await context.db.read(lambda conn: artifacts.result_file_rows(conn, assignment_id=assignment_id))
    return await _file_response(context, rows, path)


@router.get("/assignments/{assignment_id}/results/download")
async def assignment_results_download(
    assignment_id: str, context: ServerContext = Depends(get_context)
) -> StreamingResponse:
    rows = await context.db.read(lambda conn: artifacts.result_file_rows(conn, assignment_id=assignment_id))
    return _zip_response(context.blobs, rows, f"assignment-{assignment_id}-results.zip")


# -- splitting on the server (the browser's create flow) ---------------------------------------


class SplitRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    config: dict[str, Any]
    parentConfigs: dict[str, dict[str, Any]] | None = None
    strategy: Annotated[str, Field(max_length=32)] = "auto"
    numSplits: Annotated[int, Field(ge=1, le=10_000)] | None = None
    frequencyGroups: Annotated[str, Field(max_length=10_000)] | None = None


@router.post("/super-studies/split")
async def split_preview(body: SplitRequest) -> dict[str, Any]:
    """Split a GOLIAT config exactly as `goliat super_study` would, without creating anything.

    The answer's `assignments` can be posted back to `POST /api/super-studies` as they are.
    """
    if body.strategy not in STRATEGIES:
        raise BadRequest(f"Unknown strategy {body.strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    try:
        result = split_config(
            body.config,
            body.strategy,
            num_splits=body.numSplits,
            frequency_groups=body.frequencyGroups,
            parents=body.parentConfigs or {},
        )
    except SplitError as exc:
        raise BadRequest(str(exc)) from exc
    return {
        "strategy": result.strategy,
        "plan": result.plan,
        "warnings": result.warnings,
        "totalSimulations": result.total_size,
        "assignments": [
            {
                "index": a.index,
                "summary": a.summary,
                "size": a.size,
                "splitConfig": a.config,
                "status": "PENDING",
            }
            for a in result.assignments
        ],
    }


# -- actions -----------------------------------------------------------------------------------


class ReassignRequest(BaseModel):
    machineId: Annotated[str, Field(min_length=1, max_length=255)]


def _actor(request: Request, context: ServerContext) -> str:
    return f"api ({client_address(request, context.settings) or 'unknown'})"


@router.post("/super-studies/{study_id}/cancel", dependencies=[Depends(require_admin)])
async def cancel_super_study(
    study_id: str, request: Request, context: ServerContext = Depends(get_context)
) -> dict[str, Any]:
    """Cancel: pending pieces are CANCELLED, running ones are told to stop by their agents' next poll."""
    now, actor = context.now(), _actor(request, context)
    changes = await context.db.write(
        lambda conn: study_queries.cancel_study(conn, study_id, actor=actor, now=now)
    )
    context.publish(changes)
    return await get_super_study(study_id, context)


async def _assignment_action(context: ServerContext, action: Any) -> dict[str, Any]:
    changes = await context.db.write(action)
    context.publish(changes)
    study_id = next(iter(changes.studies))
    return await get_super_study(study_id, context)


@router.post("/assignments/{assignment_id}/retry", dependencies=[Depends(require_admin)])
async def retry_assignment(
    assignment_id: str, request: Request, context: ServerContext = Depends(get_context)
) -> dict[str, Any]:
    """A FAILED or CANCELLED assignment goes back to PENDING with a fresh attempt budget."""
    now, actor = context.now(), _actor(request, context)
    return await _assignment_action(
        context, lambda conn: assignment_queries.retry_assignment(conn, assignment_id, actor=actor, now=now)
    )


@router.post("/assignments/{assignment_id}/requeue", dependencies=[Depends(require_admin)])
async def requeue_assignment(
    assignment_id: str, request: Request, context: ServerContext = Depends(get_context)
) -> dict[str, Any]:
    """Take a RUNNING assignment away from its worker (which is told to stop) and queue it again."""
    now, actor = context.now(), _actor(request, context)
    return await _assignment_action(
        context, lambda conn: assignment_queries.requeue_assignment(conn, assignment_id, actor=actor, now=now)
    )


@router.post("/assignments/{assignment_id}/reassign", dependencies=[Depends(require_admin)])
async def reassign_assignment(
    assignment_id: str, body: ReassignRequest, request: Request, context: ServerContext = Depends(get_context)
) -> dict[str, Any]:
    """Queue the assignment for one named machine: only it may claim it next."""
    now, actor = context.now(), _actor(request, context)
    return await _assignment_action(
        context,
        lambda conn: assignment_queries.requeue_assignment(
            conn, assignment_id, actor=actor, now=now, reserved_for=body.machineId
        ),
    )
