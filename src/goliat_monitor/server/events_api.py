"""`GET /api/events`: the live updates of every page, as Server-Sent Events from the app's hub.

On reconnect (`Last-Event-ID`, or `lastEventId` from the page that was just rendered) the
stream first replays what the page missed: the current state of what changed, and the log
lines. When the broker has forgotten that far back the page gets `resync` and reloads its data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import Connection
from sse_starlette import EventSourceResponse

from goliat_monitor.db.queries import workers as worker_queries
from goliat_monitor.db.queries.common import AnyRow
from goliat_monitor.server import views
from goliat_monitor.server.hub import Hub, get_hub, read_study
from goliat_monitor.server.sse import CLOSE, RESYNC, Client, encode, parse_event_id

PING_INTERVAL_S = 15.0
REPLAY_LOG_LIMIT = 20_000
RETRY_MS = 2000


async def replay(hub: Hub, client: Client, last: tuple[str, int, int]) -> list[bytes]:
    """What a page missed since `last`: current state of what changed, and the log lines."""
    context = hub.context
    epoch, broker_id, log_id = last
    if epoch != hub.epoch or broker_id > context.events.last_id:
        return [RESYNC.body]  # an id from before a restart, or from another replica
    missed = context.events.since(broker_id)
    if missed is None:
        return [RESYNC.body]
    workers = {e.data["id"] for e in missed if e.kind == "worker" and isinstance(e.data.get("id"), str)}
    studies = {
        e.data["id"] for e in missed if e.kind in ("study", "results") and isinstance(e.data.get("id"), str)
    }
    clock = context.clock()

    def read(conn: Connection) -> tuple[list[dict[str, Any]], list[AnyRow], dict[str, Any]]:
        rows = [views.worker(r, clock) for r in worker_queries.workers_by_ids(conn, workers)]
        lines = (
            worker_queries.log_lines_after(conn, log_id, REPLAY_LOG_LIMIT + 1) if client.log_workers else []
        )
        found = {s: read_study(conn, s, clock.now) for s in studies}
        return rows, lines, found

    rows, lines, found = await context.db.read(read)
    if len(lines) > REPLAY_LOG_LIMIT:
        return [RESYNC.body]
    out: list[bytes] = []
    stalled_after_s = context.settings.stalled_after_s
    shown = [
        views.worker_view(row, now=clock.now, stalled_after_s=stalled_after_s)
        for row in rows
        if client.all_workers or row["id"] in client.workers
    ]
    hub.note_shown(shown)
    out.extend(encode("worker", view) for view in shown)
    batches: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        if line.worker_id in client.log_workers:
            batches.setdefault(line.worker_id, []).append(views.log_line(line))
    for worker_id, batch in batches.items():
        out.append(encode("logs", {"workerId": worker_id, "lines": batch}))
    timed = {e.data.get("id") for e in missed if e.kind == "timings"}
    for worker_id in sorted(client.workers & timed):
        out.append(encode("timings", {"workerId": worker_id}))
    for study_id, study in found.items():
        if study is None:
            out.append(encode("study", {"id": study_id, "deleted": True}))
            continue
        out.append(encode("study", views.study_summary(study)))
        if study_id in client.studies:
            out.append(encode("assignments", views.study_detail(study)))
    return out


router = APIRouter(tags=["live updates"])


@router.get("/api/events", response_class=EventSourceResponse)
async def events(
    request: Request,
    workers: list[str] = Query([], description="Worker ids whose card updates to push, or `all`"),
    logs: list[str] = Query([], description="Worker ids whose new log lines to push (up to 20)"),
    study: list[str] = Query([], description="Study ids whose assignment table to push (up to 20)"),
    last_event_id: str | None = Query(
        None, alias="lastEventId", max_length=64, description="Resume point of a freshly rendered page"
    ),
) -> EventSourceResponse:
    """Server-Sent Events: `worker`, `timings`, `logs`, `study`, `assignments`, `results`, `resync`,
    `hello`.

    Honours `Last-Event-ID` (EventSource sends it when it reconnects) and sends a comment every
    `PING_INTERVAL_S` so proxies keep the connection open.
    """
    hub = get_hub(request.app)
    resume = parse_event_id(request.headers.get("last-event-id")) or parse_event_id(last_event_id)
    context = hub.context

    async def stream() -> AsyncIterator[bytes]:
        # Registered here, not before: a generator that never starts (the browser left at once)
        # would never run its `finally` and would leave a client behind.
        client = hub.connect(workers=workers[:100], log_workers=logs[:20], studies=study[:20])
        try:
            broker_id = context.events.last_id
            if client.log_workers and hub.tracking_logs is False:
                hub.start_log_tracking(await context.db.read(worker_queries.max_log_line_id))
            position = hub.event_id(broker_id, hub.log_floor())
            if resume is not None:
                for body in await replay(hub, client, resume):
                    yield body
            hello = {
                "serverTime": context.now(),
                "stalledAfterS": context.settings.stalled_after_s,
                "offlineAfterS": context.settings.offline_after_s,
            }
            yield encode("hello", hello, event_id=position, retry=RETRY_MS)
            while True:
                # Whatever is queued goes out in one write: one send per flush, not per frame.
                frames = [await client.queue.get()]
                while not client.queue.empty() and len(frames) < 256:
                    frames.append(client.queue.get_nowait())
                closing = CLOSE in frames
                body = b"".join(f.body for f in frames if f is not CLOSE)
                if body:
                    yield body
                if closing:
                    return
        finally:
            hub.disconnect(client)

    return EventSourceResponse(
        stream(),
        ping=PING_INTERVAL_S,
        send_timeout=30,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
