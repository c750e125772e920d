"""GPU-hours and cost in the API: per worker, per assignment, per super study, and the price PATCH."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.api.helpers import create_study, gui, heartbeat
from tests.api.test_metrics import scrape, value
from tests.conftest import LiveServer

H = 3600.0
A, B = "10.0.0.1", "10.0.0.2"


def worker_of(server: LiveServer, machine: str) -> dict[str, Any]:
    found = [w for w in server.client.get("/api/workers").json() if w["machineId"] == machine]
    assert len(found) == 1, found
    detail: dict[str, Any] = server.client.get(f"/api/workers/{found[0]['id']}").json()
    assert {k: detail[k] for k in ("gpuHours", "cost", "idleHours", "idleCost")} == {
        k: found[0][k] for k in ("gpuHours", "cost", "idleHours", "idleCost")
    }
    return detail


@pytest.fixture
def server(make_server: Callable[..., LiveServer]) -> LiveServer:
    # Liveness is not under test here: a worker stays online across the clock's jumps.
    return make_server(price_per_hour=2.0, currency="EUR", offline_after_s=10 * H)


def test_costs_of_workers_assignments_and_the_study(server: LiveServer) -> None:
    client = server.client
    study = create_study(client, count=3)
    ids = [a["id"] for a in study["assignments"]]
    assert heartbeat(client, A, hostname="vm-a").status_code == 200
    worker_a = worker_of(server, A)
    assert worker_a["pricePerHour"] is None and worker_a["effectivePricePerHour"] == 2.0
    patched = client.patch(f"/api/workers/{worker_a['id']}", json={"pricePerHour": 3.0})
    assert patched.status_code == 200, patched.text
    assert patched.json()["pricePerHour"] == 3.0 and patched.json()["currency"] == "EUR"

    server.clock.advance(0.5 * H)  # idle for half an hour
    assert client.post(f"/api/assignments/{ids[0]}/claim", json={"machineId": A}).status_code == 200
    server.clock.advance(1 * H)
    assert heartbeat(client, B, hostname="vm-b").status_code == 200
    assert (
        gui(client, {"type": "finished", "message": "Study finished successfully"}, machine=A).status_code
        == 200
    )
    assert client.post(f"/api/assignments/{ids[1]}/claim", json={"machineId": A}).status_code == 200
    assert (
        gui(client, {"type": "overall_progress", "current": 50, "total": 100}, machine=A).status_code == 200
    )
    assert gui(client, {"type": "profiler_update", "eta_seconds": 1 * H}, machine=A).status_code == 200
    server.clock.advance(0.5 * H)
    assert heartbeat(client, A).status_code == 200

    a = worker_of(server, A)
    assert a["gpuHours"] == pytest.approx(1.5)  # 1 h on the first piece, 0.5 h on the second so far
    assert a["cost"] == pytest.approx(4.5)
    assert a["idleHours"] == pytest.approx(0.5)
    assert a["idleCost"] == pytest.approx(1.5)
    b = worker_of(server, B)  # online for half an hour, never given work, at the default price
    assert b["gpuHours"] == 0 and b["cost"] == 0
    assert b["idleHours"] == pytest.approx(0.5) and b["idleCost"] == pytest.approx(1.0)

    detail = client.get(f"/api/super-studies/{study['id']}").json()
    assert detail["currency"] == "EUR"
    assert detail["gpuHours"] == pytest.approx(1.5)
    assert detail["cost"] == pytest.approx(4.5)
    pieces = {p["id"]: p for p in detail["assignments"]}
    assert pieces[ids[0]]["cost"] == pytest.approx(3.0)
    assert pieces[ids[0]]["projectedCost"] == pytest.approx(3.0)
    # Running with an ETA half an hour away (the ETA was sent half an hour ago): 0.5 h more at 3.
    assert pieces[ids[1]]["projectedCost"] == pytest.approx(1.5 + 0.5 * 3.0)
    # Pending: 1 simulation at the 1 h per simulation seen so far (1.5 h over 1.5 done), at the
    # study's mean price (3 per hour).
    assert pieces[ids[2]]["projectedCost"] == pytest.approx(1.0 * 3.0)
    assert detail["projectedCost"] == pytest.approx(4.5 + 1.5 + 3.0)
    assert value(scrape(client), "goliat_monitor_gpu_hours_total") == pytest.approx(1.5)


def test_a_retried_attempt_still_costs(server: LiveServer) -> None:
    client = server.client
    study = create_study(client, count=1)
    piece = study["assignments"][0]["id"]
    assert client.post(f"/api/assignments/{piece}/claim", json={"machineId": A}).status_code == 200
    server.clock.advance(1 * H)
    ended = gui(client, {"type": "finished", "message": "out of GPU memory", "exit_code": 42}, machine=A)
    assert ended.status_code == 200
    assert client.get(f"/api/super-studies/{study['id']}").json()["assignments"][0]["status"] == "PENDING"
    assert client.post(f"/api/assignments/{piece}/claim", json={"machineId": B}).status_code == 200
    server.clock.advance(2 * H)
    assert (
        gui(client, {"type": "finished", "message": "Study finished successfully"}, machine=B).status_code
        == 200
    )
    detail = client.get(f"/api/super-studies/{study['id']}").json()
    assert detail["gpuHours"] == pytest.approx(3.0)
    assert detail["cost"] == pytest.approx(6.0)
    assert detail["projectedCost"] == pytest.approx(6.0)
    assert value(scrape(client), "goliat_monitor_gpu_hours_total") == pytest.approx(3.0)


def test_the_price_is_the_machines_like_the_label(server: LiveServer) -> None:
    client = server.client
    assert heartbeat(client, A).status_code == 200
    worker = worker_of(server, A)
    url = f"/api/workers/{worker['id']}"
    assert client.patch(url, json={"pricePerHour": 1.25}).json()["effectivePricePerHour"] == 1.25
    labelled = client.patch(url, json={"machineLabel": "rack 2"}).json()
    assert labelled["machineLabel"] == "rack 2" and labelled["pricePerHour"] == 1.25  # kept
    assert client.patch(url, json={"pricePerHour": -1}).status_code == 422
    assert client.patch(url, json={"pricePerHour": "a lot"}).status_code == 422
    # A machine that comes back after being offline is a new session with the same price.
    server.clock.advance(20 * H)
    assert heartbeat(client, A).status_code == 200
    again = worker_of(server, A)
    assert again["id"] != worker["id"]
    assert again["pricePerHour"] == 1.25 and again["machineLabel"] == "rack 2"
    assert again["idleHours"] == 0  # its hours start with the session
    reset = client.patch(f"/api/workers/{again['id']}", json={"pricePerHour": None}).json()
    assert reset["pricePerHour"] is None and reset["effectivePricePerHour"] == 2.0
    assert reset["machineLabel"] == "rack 2"


def test_the_price_needs_an_admin(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(admin_token="admin-secret", worker_token="worker-secret")
    assert (
        server.client.post(
            "/api/heartbeat", json={"machineId": A}, headers={"X-API-Key": "worker-secret"}
        ).status_code
        == 200
    )
    worker_id = server.client.get("/api/workers").json()[0]["id"]
    url = f"/api/workers/{worker_id}"
    assert server.client.patch(url, json={"pricePerHour": 9.0}).status_code == 401
    ok = server.client.patch(
        url, json={"pricePerHour": 9.0}, headers={"Authorization": "Bearer admin-secret"}
    )
    assert ok.status_code == 200 and ok.json()["pricePerHour"] == 9.0
