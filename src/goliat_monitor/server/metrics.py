"""`GET /metrics`: the server in Prometheus' text format, from a registry of the app's own.

Two kinds of figures, and Grafana should aggregate them differently:

- **From the database at scrape time** (`db/queries/metrics.py`): workers, assignments and
  super studies by status, and the GPU-hours of every attempt. Every replica reads the same
  database, so every replica reports the same values (take `max`, not `sum`, across replicas).
- **Counted in this process**: GOLIAT messages and log lines ingested, request durations, open
  live streams. Each replica counts its own (Prometheus sums them: `sum(rate(...))`), and they
  start from zero when the process does.

The hot path must not pay for being measured: ingest runs thousands of messages a second, so
the counters are plain ints and lists bumped on the event loop (`IngestCounters`,
`RequestTimes.observe` is a dict lookup, a bisect and two additions), and they become metric
families only when Prometheus asks (`AppCollector`). `bench/metrics.py` measures both: the cost
of one observation, and ingest with and without a 5 s scraper.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from goliat_monitor.db.queries import metrics as metric_queries
from goliat_monitor.server.auth import require_metrics
from goliat_monitor.server.context import ServerContext, get_context
from goliat_monitor.server.counters import IngestCounters, RequestTimes
from goliat_monitor.server.lean_route import LeanJsonRoute

UNMATCHED = "unmatched"
"""The route label of a request no route took (a 404): raw paths would make the labels unbounded."""


@dataclass(frozen=True)
class Figures:
    """What one scrape reports: the database snapshot and copies of this process's counters."""

    snapshot: metric_queries.Snapshot = field(default_factory=metric_queries.Snapshot)
    ingest: IngestCounters = field(default_factory=IngestCounters)
    request_times: RequestTimes = field(default_factory=RequestTimes)
    sse_clients: int = 0


@dataclass
class Metrics:
    """One app's `/metrics`: its own registry, and the figures of the scrape being formatted."""

    context: ServerContext
    figures: Figures = field(default_factory=Figures)
    registry: CollectorRegistry = field(init=False)
    _formatting: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        # A registry per app, never prometheus_client's global one: several apps in one process
        # (the tests) would otherwise report each other's figures or refuse to register.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(AppCollector(self))
        ProcessCollector(registry=self.registry)

    def render(self, figures: Figures) -> bytes:
        """The text format of `figures` (and of the process collector's readings). Called on a
        thread; the lock keeps two scrapes at once from formatting each other's figures."""
        with self._formatting:
            self.figures = figures
            return generate_latest(self.registry)


class AppCollector:
    """Turns the counters and the latest database snapshot into metric families, at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        figures = self.metrics.figures
        snap = figures.snapshot
        ingest = figures.ingest
        yield _gauge(
            "goliat_monitor_workers", "Live worker sessions by status (from the database).", snap.workers
        )
        yield _gauge(
            "goliat_monitor_assignments", "Assignments by status (from the database).", snap.assignments
        )
        yield _gauge(
            "goliat_monitor_super_studies", "Super studies by status (from the database).", snap.super_studies
        )
        hours = GaugeMetricFamily(
            "goliat_monitor_gpu_hours_total",
            "GPU-hours of every attempt of the stored super studies, running ones up to now (from the "
            "database; deleting a study removes its hours).",
        )
        hours.add_metric([], snap.gpu_hours)
        yield hours
        messages = CounterMetricFamily(
            "goliat_monitor_messages",
            "GOLIAT messages ingested by this process (redeliveries included), by kind.",
            labels=["kind"],
        )
        messages.add_metric(["heartbeat"], ingest.heartbeats)
        messages.add_metric(["gui_update"], ingest.gui_updates)
        yield messages
        lines = CounterMetricFamily("goliat_monitor_log_lines", "Log lines stored by this process.")
        lines.add_metric([], ingest.log_lines)
        yield lines
        clients = GaugeMetricFamily("goliat_monitor_sse_clients", "Live-update streams open on this process.")
        clients.add_metric([], figures.sse_clients)
        yield clients
        yield request_histogram(figures.request_times)


def _gauge(name: str, documentation: str, counts: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["status"])
    for status, n in sorted(counts.items()):
        family.add_metric([status], n)
    return family


def request_histogram(times: RequestTimes) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "goliat_monitor_request_duration_seconds",
        "Time from a request's arrival to its answer's last byte, by method and route template.",
        labels=["method", "route"],
    )
    bounds = [*(repr(b) for b in times.bounds), "+Inf"]
    for (method, route), timings in sorted(times.routes.items()):
        cumulative, running = [], 0
        for bound, n in zip(bounds, timings.buckets, strict=True):
            running += n
            cumulative.append((bound, float(running)))
        family.add_metric([method, route], cumulative, timings.total)
    return family


class RequestTimer:
    """ASGI layer that times every HTTP request into `RequestTimes`, labelled by route template.

    It sits inside the `/t/<token>/` prefix layer (it sees the routed path) and outside the lean
    ingest dispatch (it times GOLIAT's calls too). The template comes from `scope["route"]`,
    which Starlette's router sets on the scope it is handed; a lean call's path is its template;
    anything else (a 404) is `unmatched`.
    """

    def __init__(self, app: ASGIApp, times: RequestTimes, routes: Iterable[BaseRoute]) -> None:
        self.app = app
        self.times = times
        self.fixed = {getattr(route, "path", "") for route in routes if isinstance(route, LeanJsonRoute)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope.get("route")
            if route is not None:
                template = _template(route)
            else:
                path = scope["path"]
                template = path if path in self.fixed else UNMATCHED
            self.times.observe(scope["method"], template, time.perf_counter() - started)


def _template(route: Any) -> str:
    path = getattr(route, "path", None)
    if isinstance(route, Mount):
        return f"{path}/{{path}}"
    return path if isinstance(path, str) else UNMATCHED


# -- the route ----------------------------------------------------------------------------------

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    dependencies=[Depends(require_metrics)],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request, context: ServerContext = Depends(get_context)) -> Response:
    """Prometheus text format: database-wide gauges read now, this process's counters.

    The counters are copied on the loop (they are only ever touched there) and formatted on a
    thread: formatting took ~3.4 ms, which every GOLIAT message behind it waited for.
    """
    app_metrics = metrics_of(request.app)
    clock = context.clock()
    snapshot = await context.db.read(lambda conn: metric_queries.snapshot(conn, clock))
    figures = Figures(
        snapshot=snapshot,
        ingest=context.ingest_counts.copy(),
        request_times=context.request_times.copy(),
        sse_clients=len(request.app.state.sse_hub.clients),
    )
    body = await to_thread.run_sync(app_metrics.render, figures)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def metrics_of(app: FastAPI) -> Metrics:
    found: Metrics = app.state.metrics
    return found
