"""Live updates for the pages: `GET /api/events`, Server-Sent Events fed by one hub per app.

A write publishes a tiny `{kind, id}` event; turning it into what a page shows takes a database
read. The hub does that read once for every open browser, coalesces bursts (one update per worker
card per `WORKER_INTERVAL_S`, log lines in batches), encodes each frame once and hands the same
bytes to every connection. A browser that falls behind is sent `resync` instead of slowing
anyone down.

Frame ids are `<broker event id>.<log row id>`. On reconnect (`Last-Event-ID`, or `lastEventId`
from the page that was just rendered) the first part says which state changes the page missed
(`EventBroker.since`), the second which log lines; both are replayed. When the broker has
forgotten them the page gets `resync` and reloads its data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request
from sse_starlette import EventSourceResponse

from goliat_monitor.db import queries
from goliat_monitor.errors import NotFound
from goliat_monitor.events import Event, Subscription
from goliat_monitor.server.context import ServerContext
from goliat_monitor.server.overview import facets as overview_facets

log = logging.getLogger(__name__)

WORKER_INTERVAL_S = 0.25
"""Shortest time between two pushes of one worker card (at most 4 per second)."""
LOG_INTERVAL_S = 0.2
FLUSH_GAP_S = 0.05
"""Shortest time between two flushes, so one database read serves a burst from many workers."""
STUDY_INTERVAL_S = 1.0
LIVENESS_INTERVAL_S = 2.0
"""How often the hub re-derives online / stalled lights: they change with time, not with writes."""
PING_INTERVAL_S = 15.0
IDLE_LINGER_S = 30.0
CLIENT_QUEUE = 2048
"""Frames a connection may fall behind by (about 5 s of 100 busy workers) before it must resync."""
LOG_READ_LIMIT = 5000
REPLAY_LOG_LIMIT = 20_000
GAP_TTL_S = 30.0
MAX_GAPS = 500
RETRY_MS = 2000
STUDY_EVENTS_SHOWN = 300

LIGHTS = {"RUNNING": "green", "IDLE": "yellow", "OFFLINE": "red", "ERROR": "red"}


# -- render-ready payloads ---------------------------------------------------------------------


def parse_iso(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


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


def read_study(conn: Any, study_id: str, now: float) -> dict[str, Any] | None:
    try:
        return queries.get_super_study(conn, study_id, now=now)
    except NotFound:
        return None


# -- frames ------------------------------------------------------------------------------------


def encode(event: str, data: Any, *, event_id: str | None = None, retry: int | None = None) -> bytes:
    """One SSE message. JSON from `json.dumps` has no newlines, so `data:` is a single line."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if retry is not None:
        lines.append(f"retry: {retry}")
    lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), default=str))
    return ("\n".join(lines) + "\n\n").encode()


@dataclass(frozen=True)
class Frame:
    body: bytes
    topic: tuple[str, str] | None = None
    """None: for every page; ("worker" | "logs" | "study", id): only for pages that follow it."""


RESYNC = Frame(encode("resync", {}))
CLOSE = Frame(b"")
"""Ends a stream; the browser reconnects by itself and resumes from its last event id."""


@dataclass(eq=False)
class Client:
    """One open EventSource: its queue and what it asked to follow besides the shared updates."""

    all_workers: bool = False
    workers: frozenset[str] = frozenset()
    log_workers: frozenset[str] = frozenset()
    studies: frozenset[str] = frozenset()
    queue: asyncio.Queue[Frame] = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))
    dropped: int = 0

    def wants(self, frame: Frame) -> bool:
        if frame.topic is None:
            return True
        kind, key = frame.topic
        if kind == "worker":
            return self.all_workers or key in self.workers
        return key in (self.log_workers if kind == "logs" else self.studies)

    def offer(self, frame: Frame) -> None:
        """Queue a frame; a client that cannot keep up loses its backlog and must resync."""
        if self.queue.full():
            self.dropped += 1
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)
            return
        self.queue.put_nowait(frame)


def parse_event_id(value: str | None) -> tuple[str, int, int] | None:
    """`<epoch>:<broker id>.<log row id>` as (epoch, broker id, log row id); None if malformed."""
    if not value:
        return None
    epoch, _, rest = value.strip().partition(":")
    broker_part, _, log_part = rest.partition(".")
    try:
        return epoch, int(broker_part), int(log_part or 0)
    except ValueError:
        return None


# -- the hub -----------------------------------------------------------------------------------


class Hub:
    """Turns broker events into frames once, for every connection of one app."""

    def __init__(self, context: ServerContext) -> None:
        self.context = context
        self.epoch = secrets.token_hex(4)
        """Broker ids count from 1 in every process: an id from another run or replica means resync."""
        self.clients: set[Client] = set()
        self.frames_sent = 0
        self._task: asyncio.Task[None] | None = None
        self._broker_pos = 0
        self._dirty_workers: set[str] = set()
        self._dirty_studies: set[str] = set()
        self._dirty_results: dict[str, dict[str, Any]] = {}
        self._logs_dirty = False
        self._last_worker_push: dict[str, float] = {}
        self._last_study_push: dict[str, float] = {}
        self._last_log_push = 0.0
        self._last_flush = 0.0
        self._next_liveness = 0.0
        self._lights: dict[str, tuple[str, bool]] | None = None
        self._log_hw: int | None = None
        self._gaps: dict[int, float] = {}
        self._idle_since: float | None = None

    # connections

    def connect(
        self,
        *,
        workers: Iterable[str] = (),
        log_workers: Iterable[str] = (),
        studies: Iterable[str] = (),
    ) -> Client:
        wanted = frozenset(workers)
        client = Client(
            all_workers="all" in wanted,
            workers=wanted - {"all"},
            log_workers=frozenset(log_workers),
            studies=frozenset(studies),
        )
        self.clients.add(client)
        self._idle_since = None
        if self._task is None or self._task.done():
            # Subscribe now, not when the task first runs: nothing published in between is lost.
            sub = self.context.events.subscribe()
            self._broker_pos = self.context.events.last_id
            self._task = asyncio.create_task(self._run(sub), name="sse-hub")
        return client

    def disconnect(self, client: Client) -> None:
        self.clients.discard(client)
        if not self.clients:
            self._idle_since = time.monotonic()
        if not self.log_followers:
            # Nobody reads logs now; whoever comes next starts from the newest row, not a backlog.
            self._log_hw = None
            self._gaps.clear()
            self._logs_dirty = False

    def close_all(self) -> None:
        """End every open stream (they reconnect and resume): for shutdown and for tests."""
        for client in list(self.clients):
            while not client.queue.empty():
                client.queue.get_nowait()
            client.queue.put_nowait(CLOSE)

    async def stop(self) -> None:
        self.close_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def event_id(self, broker_id: int, log_id: int) -> str:
        return f"{self.epoch}:{broker_id}.{log_id}"

    def position(self) -> str:
        """The id a page is up to once it has seen everything queued for it so far."""
        return self.event_id(max(self._broker_pos, 0), self.log_floor())

    @property
    def tracking_logs(self) -> bool:
        return self._log_hw is not None

    def start_log_tracking(self, top: int) -> None:
        """Start pushing log lines stored after row `top` (the newest when the first log page opened)."""
        if self._log_hw is None:
            self._log_hw = top
            self._gaps.clear()

    def log_floor(self) -> int:
        """Every log row at or below this id has been pushed (or will never exist)."""
        if self._log_hw is None:
            return 0
        return min(self._gaps, default=self._log_hw + 1) - 1

    @property
    def log_followers(self) -> set[str]:
        return set().union(*(c.log_workers for c in self.clients)) if self.clients else set()

    def broadcast(self, frame: Frame) -> None:
        for client in list(self.clients):
            if client.wants(frame):
                client.offer(frame)
                self.frames_sent += 1

    # the loop

    async def _run(self, sub: Subscription) -> None:
        broker = self.context.events
        try:
            while True:
                try:
                    await self._step(sub)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("live update step failed; pages are asked to resync")
                    self._clear_dirty()
                    self.broadcast(RESYNC)
                    await asyncio.sleep(1.0)
                idle = self._idle_since
                if not self.clients and idle is not None and time.monotonic() - idle > IDLE_LINGER_S:
                    return
        finally:
            broker.unsubscribe(sub)
            self._clear_dirty()
            self._log_hw = None
            self._gaps.clear()

    async def _step(self, sub: Subscription) -> None:
        timeout = self._wait_time()
        event: Event | None = None
        try:
            async with asyncio.timeout(timeout):
                event = await sub.queue.get()
        except TimeoutError:
            pass
        if event is not None:
            self._note(event)
            gap = self._last_flush + FLUSH_GAP_S - time.monotonic()
            if gap > 0 and self.clients:
                await asyncio.sleep(gap)  # let the burst gather: one read for all of it
            while not sub.queue.empty():
                self._note(sub.queue.get_nowait())
        if sub.overflowed:
            sub.overflowed = False
            self._clear_dirty()
            self.broadcast(RESYNC)
            return
        if self.clients:
            await self._flush()
            if time.monotonic() >= self._next_liveness:
                self._next_liveness = time.monotonic() + LIVENESS_INTERVAL_S
                await self._check_liveness()

    def _wait_time(self) -> float:
        if not self.clients:
            return IDLE_LINGER_S / 4
        now = time.monotonic()
        due = [self._next_liveness]
        due += [self._last_worker_push.get(w, 0.0) + WORKER_INTERVAL_S for w in self._dirty_workers]
        due += [self._last_study_push.get(s, 0.0) + STUDY_INTERVAL_S for s in self._dirty_studies]
        due += [self._last_study_push.get(s, 0.0) + STUDY_INTERVAL_S for s in self._dirty_results]
        if self._logs_dirty:
            due.append(self._last_log_push + LOG_INTERVAL_S)
        return max(0.0, min(due) - now, self._last_flush + FLUSH_GAP_S - now)

    def _note(self, event: Event) -> None:
        self._broker_pos = max(self._broker_pos, event.id)
        item_id = event.data.get("id")
        if not isinstance(item_id, str):
            return
        if event.kind == "worker":
            self._dirty_workers.add(item_id)
        elif event.kind == "logs":
            self._logs_dirty = True
        elif event.kind == "study":
            self._dirty_studies.add(item_id)
        elif event.kind == "results":
            self._dirty_results[item_id] = dict(event.data)

    def _clear_dirty(self) -> None:
        self._dirty_workers.clear()
        self._dirty_studies.clear()
        self._dirty_results.clear()
        self._logs_dirty = False

    async def _flush(self) -> None:
        """Push what is due: one read for the workers, one for the logs, one per study."""
        now = time.monotonic()
        workers = {
            w for w in self._dirty_workers if now - self._last_worker_push.get(w, 0.0) >= WORKER_INTERVAL_S
        }
        studies = {
            s for s in self._dirty_studies if now - self._last_study_push.get(s, 0.0) >= STUDY_INTERVAL_S
        }
        results = {
            s: d
            for s, d in self._dirty_results.items()
            if now - self._last_study_push.get(s, 0.0) >= STUDY_INTERVAL_S
        }
        followers = self.log_followers
        read_logs = self._logs_dirty and now - self._last_log_push >= LOG_INTERVAL_S and bool(followers)
        if self._logs_dirty and not followers:
            self._logs_dirty = False
            self._log_hw = None
            self._gaps.clear()
        if not (workers or studies or results or read_logs):
            return
        self._last_flush = now
        self._dirty_workers -= workers
        self._dirty_studies -= studies
        for key in results:
            self._dirty_results.pop(key, None)
        if read_logs:
            self._logs_dirty = False
        context = self.context
        clock = context.clock()
        settings = context.settings
        log_hw, gaps = self._log_hw, list(self._gaps)

        def read(conn: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None, int, dict[str, Any]]:
            rows = queries.workers_by_ids(conn, workers, clock) if workers else []
            lines = None
            top = 0
            if read_logs:
                if log_hw is None:
                    top = queries.max_log_line_id(conn)
                else:
                    lines = queries.log_lines_after(conn, log_hw, LOG_READ_LIMIT, also_ids=gaps)
            found = {s: read_study(conn, s, clock.now) for s in studies}
            return rows, lines, top, found

        rows, lines, top, found = await context.db.read(read)
        pushed = time.monotonic()
        position = None
        for row in rows:
            self._last_worker_push[row["id"]] = pushed
            view = worker_view(row, now=clock.now, stalled_after_s=settings.stalled_after_s)
            if self._lights is not None and not row["isStale"]:
                self._lights[row["id"]] = (view["status"], view["stalled"])
            position = position or self.position()
            self.broadcast(Frame(encode("worker", view, event_id=position), topic=("worker", row["id"])))
        if read_logs:
            self._last_log_push = pushed
            if lines is None:
                self._log_hw = top
            else:
                self._push_lines(lines, followers)
        for study_id, study in found.items():
            self._last_study_push[study_id] = pushed
            position = self.position()
            if study is None:
                self.broadcast(Frame(encode("study", {"id": study_id, "deleted": True}, event_id=position)))
                continue
            self.broadcast(Frame(encode("study", study_summary(study), event_id=position)))
            self.broadcast(
                Frame(
                    encode("assignments", study_detail(study), event_id=position), topic=("study", study_id)
                )
            )
        for study_id, data in results.items():
            self._last_study_push[study_id] = pushed
            self.broadcast(
                Frame(encode("results", data, event_id=self.position()), topic=("study", study_id))
            )

    def _push_lines(self, lines: list[dict[str, Any]], followers: set[str]) -> None:
        """Send new lines per worker; remember skipped row ids that may still commit (PostgreSQL)."""
        assert self._log_hw is not None
        now = time.monotonic()
        fresh: dict[str, list[dict[str, Any]]] = {}
        for line in sorted(lines, key=lambda item: item["rowId"]):
            row_id = line["rowId"]
            if row_id <= self._log_hw:
                if self._gaps.pop(row_id, None) is None:
                    continue
            else:
                for missing in range(self._log_hw + 1, min(row_id, self._log_hw + 1 + MAX_GAPS)):
                    self._gaps[missing] = now
                self._log_hw = row_id
            if line["workerId"] in followers:
                fresh.setdefault(line["workerId"], []).append(_line(line))
        for row_id, since in list(self._gaps.items()):
            if now - since > GAP_TTL_S:
                del self._gaps[row_id]
        while len(self._gaps) > MAX_GAPS:
            del self._gaps[min(self._gaps)]
        position = self.position()
        for worker_id, batch in fresh.items():
            frame = encode("logs", {"workerId": worker_id, "lines": batch}, event_id=position)
            self.broadcast(Frame(frame, topic=("logs", worker_id)))

    async def _check_liveness(self) -> None:
        """Publish a `worker` event for each worker whose light changed with the passing of time."""
        horizon = time.monotonic() - 10 * STUDY_INTERVAL_S
        for pushes in (self._last_worker_push, self._last_study_push):
            for key in [k for k, at in pushes.items() if at < horizon]:
                del pushes[key]
        clock = self.context.clock()
        stalled_after_s = self.context.settings.stalled_after_s
        workers = await self.context.db.read(lambda conn: queries.list_workers(conn, clock))
        lights = {}
        for worker in workers:
            view = worker_view(worker, now=clock.now, stalled_after_s=stalled_after_s)
            lights[worker["id"]] = (view["status"], view["stalled"])
        if self._lights is not None:
            for worker_id, light in lights.items():
                if self._lights.get(worker_id, light) != light:
                    # relayed=True: not forwarded to other replicas, each derives liveness itself.
                    self.context.events.publish(
                        "worker", {"id": worker_id, "reason": "liveness"}, relayed=True
                    )
        self._lights = lights


def _line(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("message", "logType", "timestamp", "cursor")}


# -- replay on (re)connect ---------------------------------------------------------------------


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

    def read(conn: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
        rows = queries.workers_by_ids(conn, workers, clock)
        lines = queries.log_lines_after(conn, log_id, REPLAY_LOG_LIMIT + 1) if client.log_workers else []
        found = {s: read_study(conn, s, clock.now) for s in studies}
        return rows, lines, found

    rows, lines, found = await context.db.read(read)
    if len(lines) > REPLAY_LOG_LIMIT:
        return [RESYNC.body]
    out = []
    stalled_after_s = context.settings.stalled_after_s
    for row in rows:
        if client.all_workers or row["id"] in client.workers:
            out.append(encode("worker", worker_view(row, now=clock.now, stalled_after_s=stalled_after_s)))
    batches: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        if line["workerId"] in client.log_workers:
            batches.setdefault(line["workerId"], []).append(_line(line))
    for worker_id, batch in batches.items():
        out.append(encode("logs", {"workerId": worker_id, "lines": batch}))
    for study_id, study in found.items():
        if study is None:
            out.append(encode("study", {"id": study_id, "deleted": True}))
            continue
        out.append(encode("study", study_summary(study)))
        if study_id in client.studies:
            out.append(encode("assignments", study_detail(study)))
    return out


# -- the route ---------------------------------------------------------------------------------


def get_hub(app: FastAPI) -> Hub:
    hub: Hub | None = getattr(app.state, "sse_hub", None)
    if hub is None:
        hub = Hub(app.state.context)
        app.state.sse_hub = hub
    return hub


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    hub: Hub | None = getattr(app.state, "sse_hub", None)
    if hub is not None:
        await hub.stop()


router = APIRouter(tags=["live updates"], lifespan=_lifespan)


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
    """Server-Sent Events: `worker`, `logs`, `study`, `assignments`, `results`, `resync`, `hello`.

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
                hub.start_log_tracking(await context.db.read(queries.max_log_line_id))
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
