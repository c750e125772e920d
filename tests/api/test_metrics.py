"""`GET /metrics`, parsed by prometheus_client's own text parser after real GOLIAT traffic."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from goliat_monitor.settings import ServerSettings
from tests.accounts import bearer, private_server
from tests.api.helpers import create_study, gui, heartbeat, log_batch
from tests.conftest import LiveServer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: httpx.Client, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_after_a_goliat_run(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(offline_after_s=30.0)
    client = server.client
    study = create_study(client, count=3)
    first = study["assignments"][0]["id"]
    claim = client.post(f"/api/assignments/{first}/claim", json={"machineId": "10.0.0.1"})
    assert claim.status_code == 200, claim.text
    assert heartbeat(client, "10.0.0.1", hostname="vm-1").status_code == 200
    assert heartbeat(client, "10.0.0.2", hostname="vm-2").status_code == 200
    assert (
        gui(client, {"type": "overall_progress", "current": 40, "total": 100}, machine="10.0.0.1").status_code
        == 200
    )
    batch = log_batch(1, [("Simulation 1/3", "progress"), ("gridding", "info"), ("careful", "warning")])
    assert gui(client, batch, machine="10.0.0.1").status_code == 200
    updates = [
        {
            "machineId": "10.0.0.2",
            "message": log_batch(1, [("one", "info"), ("two", "info")]),
            "timestamp": 1.0,
        },
        {"machineId": "10.0.0.2", "message": {"type": "status", "message": "alone", "log_type": "info"}},
    ]
    assert client.post("/api/gui-updates", json={"updates": updates}).status_code == 200
    server.clock.advance(1800)  # the first assignment has run half an hour; 10.0.0.2 went silent
    assert heartbeat(client, "10.0.0.1").status_code == 200

    samples = scrape(client)

    assert value(samples, "goliat_monitor_workers", status="RUNNING") == 1
    assert value(samples, "goliat_monitor_workers", status="OFFLINE") == 1
    assert value(samples, "goliat_monitor_workers", status="IDLE") == 0
    assert value(samples, "goliat_monitor_assignments", status="RUNNING") == 1
    assert value(samples, "goliat_monitor_assignments", status="PENDING") == 2
    assert value(samples, "goliat_monitor_super_studies", status="RUNNING") == 1
    assert value(samples, "goliat_monitor_super_studies", status="COMPLETED") == 0
    assert value(samples, "goliat_monitor_gpu_hours_total") == pytest.approx(0.5, abs=1e-6)
    assert value(samples, "goliat_monitor_messages_total", kind="heartbeat") == 3
    assert value(samples, "goliat_monitor_messages_total", kind="gui_update") == 4
    assert value(samples, "goliat_monitor_log_lines_total") == 6  # 3 + 2 + the status line
    assert value(samples, "goliat_monitor_sse_clients") == 0
    # Labelled by route template: the claim's id is not in the label.
    claim_count = value(
        samples,
        "goliat_monitor_request_duration_seconds_count",
        method="POST",
        route="/api/assignments/{assignment_id}/claim",
    )
    assert claim_count == 1
    assert (
        value(samples, "goliat_monitor_request_duration_seconds_count", method="POST", route="/api/heartbeat")
        == 3
    )
    ingest_inf = value(
        samples,
        "goliat_monitor_request_duration_seconds_bucket",
        method="POST",
        route="/api/gui-update",
        le="+Inf",
    )
    assert ingest_inf == 2
    routes = {dict(labels)["route"] for name, labels in samples if name.startswith("goliat_monitor_request_")}
    assert not any(first in route for route in routes)
    for method, route in {
        (dict(k)["method"], dict(k)["route"])
        for n, k in samples
        if n.endswith("_count") and n.startswith("goliat_monitor_request_")
    }:
        buckets = sorted(
            (float(dict(labels)["le"]), v)
            for (n, labels), v in samples.items()
            if n == "goliat_monitor_request_duration_seconds_bucket"
            and dict(labels)["method"] == method
            and dict(labels)["route"] == route
        )
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), (route, buckets)  # cumulative
        count = value(samples, "goliat_monitor_request_duration_seconds_count", method=method, route=route)
        assert buckets[-1] == (float("inf"), count)

    # The assignment completes: its hours stop growing, the study moves on.
    assert (
        gui(
            client, {"type": "finished", "message": "Study finished successfully"}, machine="10.0.0.1"
        ).status_code
        == 200
    )
    server.clock.advance(3600)
    assert client.get("/nothing/here").status_code == 404
    samples = scrape(client)
    assert value(samples, "goliat_monitor_gpu_hours_total") == pytest.approx(0.5, abs=1e-6)
    assert value(samples, "goliat_monitor_assignments", status="COMPLETED") == 1
    assert (
        value(samples, "goliat_monitor_request_duration_seconds_count", method="GET", route="unmatched") == 1
    )


def test_gauges_agree_across_two_apps_on_one_database(make_server: Callable[..., LiveServer]) -> None:
    """Each app has its own registry: two in one process neither clash nor share their counters,
    and the gauges, read from their one database, agree."""
    one = make_server()

    def same_database(settings: ServerSettings) -> None:
        settings.data_dir = one.settings.data_dir  # SQLite: the same file; PostgreSQL: the same URL

    two = make_server(prepare=same_database)
    create_study(one.client, count=2)
    assert heartbeat(one.client, "10.0.0.9").status_code == 200
    first, second = scrape(one.client), scrape(two.client)
    assert value(first, "goliat_monitor_assignments", status="PENDING") == 2
    assert value(second, "goliat_monitor_assignments", status="PENDING") == 2
    assert value(first, "goliat_monitor_workers", status="IDLE") == 1
    assert value(second, "goliat_monitor_workers", status="IDLE") == 1
    assert value(first, "goliat_monitor_messages_total", kind="heartbeat") == 1
    assert value(second, "goliat_monitor_messages_total", kind="heartbeat") == 0


def test_the_metrics_token(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(metrics_token="scrape-secret")
    assert server.client.get("/metrics").status_code == 401
    assert server.client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    scrape(server.client, Authorization="Bearer scrape-secret")
    scrape(server.client, **{"X-API-Key": "scrape-secret"})
    assert server.client.get("/t/scrape-secret/metrics").status_code == 200


def test_private_metrics_need_the_token_or_a_reader(make_server: Callable[..., LiveServer]) -> None:
    """With --private, Prometheus needs only the metrics token (no account); a viewer may look too."""
    server = private_server(make_server, metrics_token="scrape-secret")
    assert server.client.get("/metrics").status_code == 401
    scrape(server.client, Authorization="Bearer scrape-secret")
    scrape(server.client, **bearer("viewer"))
    assert server.client.get("/metrics", headers=bearer("worker")).status_code == 401


def test_private_metrics_without_a_token_need_a_reader(make_server: Callable[..., LiveServer]) -> None:
    server = private_server(make_server)
    assert server.client.get("/metrics").status_code == 401
    assert server.client.get("/metrics", headers=bearer("worker")).status_code == 401
    scrape(server.client, **bearer("viewer"))
