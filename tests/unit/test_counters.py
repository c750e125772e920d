"""The request-duration histogram in plain numbers (server/counters.py) and its Prometheus form."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from goliat_monitor.server.counters import DURATION_BUCKETS, IngestCounters, RequestTimes
from goliat_monitor.server.metrics import request_histogram


def test_a_bound_belongs_to_its_own_bucket() -> None:
    times = RequestTimes()
    times.observe("GET", "/a", 0.001)  # le="0.001" counts values up to and including it
    times.observe("GET", "/a", 0.0010001)
    times.observe("GET", "/a", 99.0)
    buckets = times.routes[("GET", "/a")].buckets
    assert buckets[0] == 1 and buckets[1] == 1 and buckets[-1] == 1
    assert len(buckets) == len(DURATION_BUCKETS) + 1


class _Registered:
    def __init__(self, times: RequestTimes) -> None:
        self.times = times

    def collect(self) -> Iterator[Metric]:
        yield request_histogram(self.times)


@given(st.lists(st.floats(0, 20, allow_nan=False), max_size=50))
def test_the_exposed_histogram_agrees_with_prometheus_rules(durations: list[float]) -> None:
    times = RequestTimes()
    for seconds in durations:
        times.observe("POST", "/api/gui-update", seconds)
    registry = CollectorRegistry()
    registry.register(_Registered(times))
    (family,) = list(text_string_to_metric_families(generate_latest(registry).decode()))
    if not durations:
        assert family.samples == []
        return
    by_name: dict[str, list[Sample]] = {}
    for sample in family.samples:
        by_name.setdefault(sample.name, []).append(sample)
    for sample in by_name["goliat_monitor_request_duration_seconds_bucket"]:
        bound = float(sample.labels["le"])
        assert sample.value == sum(1 for d in durations if d <= bound)
    assert by_name["goliat_monitor_request_duration_seconds_count"][0].value == len(durations)
    assert abs(by_name["goliat_monitor_request_duration_seconds_sum"][0].value - sum(durations)) < 1e-6


def test_a_copy_keeps_its_figures_while_the_loop_goes_on_counting() -> None:
    """A scrape formats a copy on a thread; the loop's next observations must not reach it."""
    times, ingest = RequestTimes(), IngestCounters(heartbeats=1)
    times.observe("POST", "/api/heartbeat", 0.002)
    frozen_times, frozen_ingest = times.copy(), ingest.copy()
    times.observe("POST", "/api/heartbeat", 0.002)
    times.observe("GET", "/metrics", 0.02)
    ingest.heartbeats += 1
    assert sum(frozen_times.routes[("POST", "/api/heartbeat")].buckets) == 1
    assert frozen_times.routes[("POST", "/api/heartbeat")].total == 0.002
    assert list(frozen_times.routes) == [("POST", "/api/heartbeat")]
    assert frozen_ingest.heartbeats == 1
