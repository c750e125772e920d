"""The read API of the original dashboard (same field names), extended for pages and scripts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from goliat_monitor import __version__
from goliat_monitor.blobs import iter_chunks
from goliat_monitor.db.queries import artifacts
from goliat_monitor.db.queries import costs as cost_queries
from goliat_monitor.db.queries import logs as log_queries
from goliat_monitor.db.queries import workers as worker_queries
from goliat_monitor.db.queries.common import Changes
from goliat_monitor.domain.models import LOG_TYPES
from goliat_monitor.errors import BadRequest, NotFound
from goliat_monitor.protocol import API_VERSION
from goliat_monitor.server import storage, views
from goliat_monitor.server.auth import require_admin
from goliat_monitor.server.context import ServerContext, get_context

router = APIRouter(prefix="/api", tags=["read API"])


@router.get("/health")
async def health(context: ServerContext = Depends(get_context)) -> dict[str, Any]:
    """For load balancers and probes: the database answered within the last second, and which
    schema it holds (see `SchemaProbe`)."""
    revision = await context.schema.revision()
    return {
        "status": "ok",
        "database": "sqlite" if context.db.is_sqlite else "postgresql",
        "version": __version__,
        "apiVersion": API_VERSION,
        "schemaRevision": revision,
    }


@router.get("/storage")
async def storage_report(request: Request, context: ServerContext = Depends(get_context)) -> dict[str, Any]:
    """The database's size, the artifact store's (a folder: walked at most every 5 minutes; a
    bucket: the upload sizes the database records) and the data folder's free disk space."""
    return await storage.report(context, storage.get_probe(request.app))


@router.get("/workers")
async def list_workers(
    include_stale: bool = Query(False, alias="includeStale"), context: ServerContext = Depends(get_context)
) -> list[dict[str, Any]]:
    """Workers, most recently seen first, with their live GUI state."""
    clock = context.clock()

    def read(conn: Connection) -> list[dict[str, Any]]:
        rows = worker_queries.list_workers(conn, include_stale=include_stale)
        return views.workers(
            rows, clock, cost_queries.worker_costs(conn, rows, clock, context.pricing), context.pricing
        )

    return await context.db.read(read)


@router.get("/workers/{worker_id}")
async def get_worker(worker_id: str, context: ServerContext = Depends(get_context)) -> dict[str, Any]:
    """One worker with its most recent log lines (oldest first), assignments and screenshots."""
    return await _worker_detail(context, worker_id)


async def _worker_detail(context: ServerContext, worker_id: str) -> dict[str, Any]:
    clock = context.clock()
    recent = context.settings.recent_log_lines

    def read(conn: Connection) -> dict[str, Any]:
        detail = worker_queries.get_worker(conn, worker_id, recent_logs=recent)
        spent = cost_queries.worker_costs(conn, [detail.row], clock, context.pricing)[worker_id]
        return views.worker_detail(detail, clock, spent, context.pricing)

    return await context.db.read(read)


@router.get("/workers/{worker_id}/logs")
async def worker_logs(
    worker_id: str,
    before: str | None = Query(
        None, max_length=64, pattern=r"^-?\d+\.\d+$", description="`nextBefore` of the previous page"
    ),
    limit: int = Query(200, ge=1, le=2000),
    log_type: list[str] = Query([], alias="type", description="Only these log types (repeatable)"),
    q: str | None = Query(
        None,
        max_length=log_queries.MAX_QUERY_CHARS,
        description="Only lines containing this text (A-Z in either case; at least 3 characters),"
        " newest stored first",
    ),
    context: ServerContext = Depends(get_context),
) -> dict[str, Any]:
    """Older log lines, a page at a time, newest page first; each page is oldest first."""
    check_types(log_type)
    if q:
        log_queries.check_query(q)

    def read(conn: Connection) -> dict[str, Any]:
        worker_queries.worker_exists(conn, worker_id)
        page = worker_queries.log_page(
            conn, worker_id, before=before, limit=limit, log_types=log_type, text=q
        )
        return views.log_page(page)

    return await context.db.read(read)


SEARCH_LIMIT = 100
SEARCH_MAX_LIMIT = 500


@router.get("/logs")
async def search_logs(
    q: str = Query("", max_length=log_queries.MAX_QUERY_CHARS, description="Text the lines contain"),
    log_type: list[str] = Query([], alias="type", description="Only these log types (repeatable)"),
    study: str | None = Query(None, max_length=36, description="Only lines of this super study's runs"),
    limit: int = Query(SEARCH_LIMIT, description=f"Hits per page, 1-{SEARCH_MAX_LIMIT}"),
    before: str | None = Query(None, max_length=64, description="`nextBefore` of the previous page"),
    context: ServerContext = Depends(get_context),
) -> dict[str, Any]:
    """Lines of every worker containing `q`, newest first (in the order they were stored).

    Matching: the text as typed, A-Z in either case, every other character exactly; at least 3
    characters. A hit's `cursor` opens it in its worker's log: `/workers/{workerId}?line=CURSOR`.
    """
    search = parse_search(q, log_type, study=study, limit=limit, before=before)

    def read(conn: Connection) -> dict[str, Any]:
        return views.log_search(log_queries.search_page(conn, search))

    return await context.db.read(read)


def parse_search(
    q: str, log_types: list[str], *, study: str | None, limit: int, before: str | None
) -> log_queries.LogSearch:
    """A cross-worker search from its query parameters (the API's and the search page's), or BadRequest."""
    text = log_queries.check_query(q)
    check_types(log_types)
    if not 1 <= limit <= SEARCH_MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {SEARCH_MAX_LIMIT}")
    before_id = cursor_id(before) if before else None
    return log_queries.LogSearch(
        text=text, log_types=log_types, study_id=study or None, before_id=before_id, limit=limit
    )


def check_types(log_types: list[str]) -> None:
    unknown = [t for t in log_types if t not in LOG_TYPES]
    if unknown:
        raise BadRequest(f"Unknown log type(s): {', '.join(unknown)}")


def cursor_id(cursor: str) -> int:
    """The row id in a log cursor (`<order key>.<row id>`), or BadRequest."""
    try:
        return worker_queries.parse_cursor(cursor)[1]
    except ValueError:
        raise BadRequest(f"Bad cursor {cursor!r}: pass a `nextBefore` or `cursor` value as it came") from None


@router.get("/workers/{worker_id}/samples")
async def worker_samples(
    worker_id: str,
    minutes: float = Query(60, gt=0, le=60 * 24 * 30),
    context: ServerContext = Depends(get_context),
) -> list[dict[str, Any]]:
    """The progress, time remaining, utilisation and disk I/O time series of a worker, for charts."""
    since = context.now() - minutes * 60

    def read(conn: Connection) -> list[dict[str, Any]]:
        return [views.sample(row) for row in worker_queries.worker_samples_since(conn, worker_id, since)]

    return await context.db.read(read)


@router.get("/workers/{worker_id}/timings")
async def worker_timings(worker_id: str, context: ServerContext = Depends(get_context)) -> dict[str, Any]:
    """GOLIAT's Timings tabs for the worker's current run: the statistics table, the pies and the
    one-line summary of its window title. The current run is the assignment the worker runs, else
    the run its newest timing came from."""

    def read(conn: Connection) -> dict[str, Any]:
        return views.timings(worker_queries.current_run_timings(conn, worker_id))

    return await context.db.read(read)


@router.get("/workers/{worker_id}/screenshots/{tab:path}")
async def worker_screenshot(
    worker_id: str, tab: str, context: ServerContext = Depends(get_context)
) -> StreamingResponse:
    """The latest image of one tab, by its field name URL-encoded as one segment (`Disk_I%2FO`).

    The server decodes `%2F` before routing, so the name is the whole rest of the path (`:path`);
    it is only ever compared with stored field names, never used as a file path.
    """
    row = await context.db.read(lambda conn: artifacts.screenshot_row(conn, worker_id, tab))
    handle = await context.open_blob(row["blob_key"])
    if handle is None:
        raise NotFound(f"Screenshot of tab {tab!r} is gone")
    return StreamingResponse(
        iter_chunks(handle),
        media_type=row["content_type"],
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


class WorkerPatch(BaseModel):
    machineLabel: Annotated[str, Field(max_length=255)] | None = None
    pricePerHour: Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)] | None = None


@router.patch("/workers/{worker_id}", dependencies=[Depends(require_admin)])
async def patch_worker(
    worker_id: str, body: WorkerPatch, context: ServerContext = Depends(get_context)
) -> dict[str, Any]:
    """Set the machine's label (shown instead of its address) and/or its price per hour (null: the
    server's default); every session of the machine shares both. A field left out is kept; a body
    without `pricePerHour` sets the label, as before prices existed."""
    label = (body.machineLabel or "").strip() or None
    sent = body.model_fields_set
    now = context.now()

    def write(conn: Connection) -> Changes:
        changes = Changes()
        if "machineLabel" in sent or "pricePerHour" not in sent:
            changes.merge(worker_queries.set_worker_label(conn, worker_id, label, now))
        if "pricePerHour" in sent:
            changes.merge(worker_queries.set_worker_price(conn, worker_id, body.pricePerHour, now))
        return changes

    changes = await context.db.write(write)
    context.publish(changes)
    return await _worker_detail(context, worker_id)
