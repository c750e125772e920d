"""What this process counts for `/metrics`, as plain numbers: the hot path must not pay for it.

Ingest runs thousands of messages a second. Bumping an int after a committed write costs tens of
nanoseconds, where a `prometheus_client` counter takes a lock and a label lookup per call; the
numbers become metric families only when Prometheus asks (`server/metrics.py`). Everything here
is touched on the event loop thread only, so nothing needs a lock: a scrape copies the figures on
the loop and formats the copy on a thread.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field, replace

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (s) of the request-duration histogram: a GOLIAT message takes ~1 ms, a page 10s of ms."""


@dataclass
class IngestCounters:
    """GOLIAT messages and log lines this process stored, bumped after each committed write."""

    heartbeats: int = 0
    gui_updates: int = 0
    log_lines: int = 0

    def copy(self) -> IngestCounters:
        return replace(self)


@dataclass
class RouteTimes:
    buckets: list[int]
    """Observations per bucket (not cumulative); the last one is above every bound."""
    total: float = 0.0


@dataclass
class RequestTimes:
    """A histogram of request durations per (method, route template): a dict lookup, a bisect and
    two additions per request."""

    bounds: tuple[float, ...] = DURATION_BUCKETS
    routes: dict[tuple[str, str], RouteTimes] = field(default_factory=dict)

    def observe(self, method: str, route: str, seconds: float) -> None:
        key = (method, route)
        times = self.routes.get(key)
        if times is None:
            times = self.routes[key] = RouteTimes([0] * (len(self.bounds) + 1))
        times.buckets[bisect_left(self.bounds, seconds)] += 1  # bucket i: seconds <= bounds[i]
        times.total += seconds

    def copy(self) -> RequestTimes:
        """The figures as they are now, for a thread to format while the loop goes on counting."""
        routes = {key: RouteTimes(list(t.buckets), t.total) for key, t in self.routes.items()}
        return RequestTimes(self.bounds, routes)
