"""The live-update hub: one per app, it turns broker events into SSE frames for every open page.

A write publishes a tiny `{kind, id}` event; turning it into what a page shows takes a database
read. The hub does that read once for every open browser, coalesces bursts (one update per worker
card per `WORKER_INTERVAL_S`, log lines in batches), encodes each frame once and hands the same
bytes to every connection. A browser that falls behind is sent `resync` instead of slowing
anyone down.

Log lines are never held back on a timer: a page reads them as they come, and a tail that lags
looks broken. New lines of a worker some page follows are read at once, without waiting out
`FLUSH_GAP_S`; those of other workers only move the log high-water mark, with the next flush.

`create_app` builds the hub and stops it in its lifespan. Its loop runs only while pages are
open: the first connection starts it, and it ends `IDLE_LINGER_S` after the last one leaves.
With several replicas, events written through another replica reach this hub's broker through
`fanout.py` (published with `relayed=True`), so they look like local ones here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Connection

from goliat_monitor.db.queries import costs as cost_queries
from goliat_monitor.db.queries import studies as study_queries
from goliat_monitor.db.queries import workers as worker_queries
from goliat_monitor.db.queries.common import AnyRow
from goliat_monitor.domain.cost import Pricing
from goliat_monitor.errors import DatabaseUnavailable, NotFound
from goliat_monitor.events import Event, Subscription
from goliat_monitor.server import views
from goliat_monitor.server.context import ServerContext
from goliat_monitor.server.sse import CLOSE, RESYNC, Client, Frame, encode, format_event_id

log = logging.getLogger(__name__)

WORKER_INTERVAL_S = 0.25
"""Shortest time between two pushes of one worker card (at most 4 per second)."""
TIMINGS_INTERVAL_S = 1.0
"""Shortest time between two "new timings" notices of one worker: its page re-reads the tabs."""
FLUSH_GAP_S = 0.05
"""Shortest time between two flushes, so one database read serves a burst from many workers
(new log lines of a followed worker do not wait for it)."""
STUDY_INTERVAL_S = 1.0
LIVENESS_INTERVAL_S = 2.0
"""How often the hub re-derives online / stalled lights: they change with time, not with writes."""
UNKNOWN_LIGHT = ("", False)
"""Equal to no real light: the next liveness check pushes the worker whatever its light is."""
IDLE_LINGER_S = 30.0
LOG_READ_LIMIT = 5000
GAP_TTL_S = 30.0
MAX_GAPS = 500


def read_study(conn: Connection, study_id: str, now: float, pricing: Pricing) -> dict[str, Any] | None:
    """The study as the API shows it, None once it is deleted."""
    try:
        return views.super_study(study_queries.get_super_study(conn, study_id, now=now, pricing=pricing))
    except NotFound:
        return None


class Hub:
    """Turns broker events into frames once, for every connection of one app."""

    def __init__(self, context: ServerContext) -> None:
        self.context = context
        self.epoch = secrets.token_hex(4)
        """Broker ids count from 1 in every process: an id from another run or replica means resync."""
        self.clients: set[Client] = set()
        self.frames_sent = 0
        self._task: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None
        self._broker_pos = 0
        self._dirty_workers: set[str] = set()
        self._dirty_studies: set[str] = set()
        self._dirty_results: dict[str, dict[str, Any]] = {}
        self._dirty_timings: set[str] = set()
        self._last_timings_push: dict[str, float] = {}
        self._logs_dirty = False
        self._followed_logs_waiting = False
        """New lines of a worker some page follows are stored: flush now, not after the gap."""
        self._last_worker_push: dict[str, float] = {}
        self._last_study_push: dict[str, float] = {}
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
            self._subscription = sub = self.context.events.subscribe()
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
            self._followed_logs_waiting = False

    def close_all(self) -> None:
        """End every open stream (they reconnect and resume): for shutdown and for tests."""
        for client in list(self.clients):
            while not client.queue.empty():
                client.queue.get_nowait()
            client.queue.put_nowait(CLOSE)

    async def stop(self) -> None:
        """End every stream and the loop; `create_app`'s lifespan calls this at shutdown."""
        self.close_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._subscription is not None:
            # A loop cancelled before it first ran never reached its own `finally`.
            self.context.events.unsubscribe(self._subscription)
            self._subscription = None

    def event_id(self, broker_id: int, log_id: int) -> str:
        return format_event_id(self.epoch, broker_id, log_id)

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

    def note_shown(self, shown: Iterable[dict[str, Any]]) -> None:
        """Lights a page was just given (worker views). The next liveness check compares with
        them, so a light that changes between a page's render and the hub's first check is pushed;
        two pages shown different lights get the current one pushed, whichever it is."""
        lights = self._lights if self._lights is not None else {}
        for view in shown:
            light = (view["status"], view["stalled"])
            if lights.setdefault(view["id"], light) != light:
                lights[view["id"]] = UNKNOWN_LIGHT
        self._lights = lights

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
                except Exception as exc:
                    if isinstance(exc, DatabaseUnavailable):  # an outage: one line, not a traceback a second
                        log.warning("live update step skipped: the database is unavailable")
                    else:
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
            followers = self.log_followers
            self._note(event, followers)
            await self._gather(sub, followers)
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

    async def _gather(self, sub: Subscription, followers: set[str]) -> None:
        """Note the rest of a burst until `FLUSH_GAP_S` after the last flush, so one read serves
        all of it; new lines of a followed worker end the wait at once."""
        deadline = self._last_flush + FLUSH_GAP_S
        while True:
            while not sub.queue.empty():
                self._note(sub.queue.get_nowait(), followers)
            left = deadline - time.monotonic()
            if left <= 0 or not self.clients or self._followed_logs_waiting:
                return
            try:
                async with asyncio.timeout(left):
                    event = await sub.queue.get()
            except TimeoutError:
                return
            self._note(event, followers)

    def _wait_time(self) -> float:
        if not self.clients:
            return IDLE_LINGER_S / 4
        now = time.monotonic()
        due = [self._next_liveness]
        due += [self._last_worker_push.get(w, 0.0) + WORKER_INTERVAL_S for w in self._dirty_workers]
        due += [self._last_study_push.get(s, 0.0) + STUDY_INTERVAL_S for s in self._dirty_studies]
        due += [self._last_study_push.get(s, 0.0) + STUDY_INTERVAL_S for s in self._dirty_results]
        due += [self._last_timings_push.get(w, 0.0) + TIMINGS_INTERVAL_S for w in self._dirty_timings]
        if self._logs_dirty:
            due.append(now)
        return max(0.0, min(due) - now, self._last_flush + FLUSH_GAP_S - now)

    def _note(self, event: Event, log_followers: set[str]) -> None:
        self._broker_pos = max(self._broker_pos, event.id)
        item_id = event.data.get("id")
        if not isinstance(item_id, str):
            return
        if event.kind == "worker":
            self._dirty_workers.add(item_id)
        elif event.kind == "logs":
            self._logs_dirty = True
            if item_id in log_followers:
                self._followed_logs_waiting = True
        elif event.kind == "study":
            self._dirty_studies.add(item_id)
        elif event.kind == "results":
            self._dirty_results[item_id] = dict(event.data)
        elif event.kind == "timings":
            self._dirty_timings.add(item_id)

    def _clear_dirty(self) -> None:
        self._dirty_workers.clear()
        self._dirty_studies.clear()
        self._dirty_results.clear()
        self._dirty_timings.clear()
        self._logs_dirty = False
        self._followed_logs_waiting = False

    async def _flush(self) -> None:
        """Push what is due: one read for the workers, one for the logs, one per study."""
        now = time.monotonic()
        self._push_timing_notices(now)
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
        read_logs = self._logs_dirty and bool(followers)
        if self._logs_dirty and not followers:
            self._logs_dirty = False
            self._followed_logs_waiting = False
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
            self._followed_logs_waiting = False
        context = self.context
        clock = context.clock()
        settings = context.settings
        log_hw, gaps = self._log_hw, list(self._gaps)
        pricing = context.pricing

        def read(conn: Connection) -> tuple[list[dict[str, Any]], list[AnyRow] | None, int, dict[str, Any]]:
            rows: list[dict[str, Any]] = []
            if workers:
                found_rows = worker_queries.workers_by_ids(conn, workers)
                spent = cost_queries.worker_costs(conn, found_rows, clock, pricing)
                rows = views.workers(found_rows, clock, spent, pricing)
            lines = None
            top = 0
            if read_logs:
                if log_hw is None:
                    top = worker_queries.max_log_line_id(conn)
                else:
                    lines = worker_queries.log_lines_after(conn, log_hw, LOG_READ_LIMIT, also_ids=gaps)
            found = {s: read_study(conn, s, clock.now, pricing) for s in studies}
            return rows, lines, top, found

        rows, lines, top, found = await context.db.read(read)
        pushed = time.monotonic()
        position = None
        for row in rows:
            self._last_worker_push[row["id"]] = pushed
            view = views.worker_view(row, now=clock.now, stalled_after_s=settings.stalled_after_s)
            if self._lights is not None and not row["isStale"]:
                self._lights[row["id"]] = (view["status"], view["stalled"])
            position = position or self.position()
            self.broadcast(Frame(encode("worker", view, event_id=position), topic=("worker", row["id"])))
        if read_logs:
            if lines is None:
                self._log_hw = top
            elif self._log_hw is not None:  # else the last log page closed during the read
                self._push_lines(lines, followers)
        for study_id, study in found.items():
            self._last_study_push[study_id] = pushed
            position = self.position()
            if study is None:
                self.broadcast(Frame(encode("study", {"id": study_id, "deleted": True}, event_id=position)))
                continue
            self.broadcast(Frame(encode("study", views.study_summary(study), event_id=position)))
            self.broadcast(
                Frame(
                    encode("assignments", views.study_detail(study), event_id=position),
                    topic=("study", study_id),
                )
            )
        for study_id, data in results.items():
            self._last_study_push[study_id] = pushed
            self.broadcast(
                Frame(encode("results", data, event_id=self.position()), topic=("study", study_id))
            )

    def _push_timing_notices(self, now: float) -> None:
        """A light `timings` frame per worker with new profiler timings: no read here, since only
        the pages that show that worker want it, and they fetch the tabs themselves."""
        due = {
            w for w in self._dirty_timings if now - self._last_timings_push.get(w, 0.0) >= TIMINGS_INTERVAL_S
        }
        self._dirty_timings -= due
        for worker_id in due:
            self._last_timings_push[worker_id] = now
            frame = encode("timings", {"workerId": worker_id}, event_id=self.position())
            self.broadcast(Frame(frame, topic=("timings", worker_id)))

    def _push_lines(self, lines: list[AnyRow], followers: set[str]) -> None:
        """Send new lines per worker; remember skipped row ids that may still commit (PostgreSQL)."""
        assert self._log_hw is not None
        now = time.monotonic()
        fresh: dict[str, list[dict[str, Any]]] = {}
        for line in sorted(lines, key=lambda item: int(item.id)):
            row_id = line.id
            if row_id <= self._log_hw:
                if self._gaps.pop(row_id, None) is None:
                    continue
            else:
                for missing in range(self._log_hw + 1, min(row_id, self._log_hw + 1 + MAX_GAPS)):
                    self._gaps[missing] = now
                self._log_hw = row_id
            if line.worker_id in followers:
                fresh.setdefault(line.worker_id, []).append(views.log_line(line))
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
        for pushes in (self._last_worker_push, self._last_study_push, self._last_timings_push):
            for key in [k for k, at in pushes.items() if at < horizon]:
                del pushes[key]
        clock = self.context.clock()
        stalled_after_s = self.context.settings.stalled_after_s
        rows = await self.context.db.read(worker_queries.list_workers)
        lights = {}
        for row in rows:
            worker = views.worker(row, clock)
            view = views.worker_view(worker, now=clock.now, stalled_after_s=stalled_after_s)
            lights[worker["id"]] = (view["status"], view["stalled"])
        if self._lights is not None:
            for worker_id, light in lights.items():
                if self._lights.get(worker_id, light) != light:
                    # relayed=True: not forwarded to other replicas, each derives liveness itself.
                    self.context.events.publish(
                        "worker", {"id": worker_id, "reason": "liveness"}, relayed=True
                    )
        self._lights = lights


def get_hub(app: FastAPI) -> Hub:
    hub: Hub = app.state.sse_hub
    return hub
