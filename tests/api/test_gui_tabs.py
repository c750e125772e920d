"""GOLIAT's GUI tabs as data: the agent's timings and disk figures, stored and read back.

Payloads are literal, as the goliat-monitor agent sends them (agent/loop.py's envelope around
agent/goliat_output.py's `timing` message; a heartbeat with agent/system_info.py's figures).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.helpers import MACHINE, create_study, gui, heartbeat, only_worker
from tests.conftest import LiveServer

AGENT = "a1b2c3d4e5f6"


def agent_timing(
    client: httpx.Client,
    message_id: str,
    phase: str,
    subtask: str | None,
    seconds: float,
    simulation: int | None = None,
    assignment_id: str | None = None,
) -> httpx.Response:
    """POST one `timing` gui-update exactly as the agent builds it."""
    message: dict[str, Any] = {"type": "timing", "phase": phase, "subtask": subtask, "seconds": seconds}
    if simulation is not None:
        message["simulation"] = simulation
    body: dict[str, Any] = {
        "machineId": MACHINE,
        "agentId": AGENT,
        "messageId": message_id,
        "message": message,
        "timestamp": 1764626400.25,
    }
    if assignment_id is not None:
        body["assignmentId"] = assignment_id
    return client.post("/api/gui-update", json=body)


def worker_id(client: httpx.Client) -> str:
    return str(only_worker(client)["id"])


def timings_of(client: httpx.Client, worker: str) -> dict[str, Any]:
    response = client.get(f"/api/workers/{worker}/timings")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def test_timing_messages_fill_the_timings_table_pies_and_summary(server: LiveServer) -> None:
    sent = [
        ("m-1", "setup", "load_phantom", 3.0, 1),
        ("m-2", "setup", "simulation", 9.5, 1),  # GOLIAT's aggregate: hidden from both tabs
        ("m-3", "setup", None, 10.0, 1),
        ("m-4", "run", "isolve_execution", 80.0, 1),
        ("m-5", "run", None, 82.0, 1),
        ("m-6", "extract", None, 8.0, 1),
        ("m-7", "setup", None, 20.0, 2),
        ("m-8", "run", None, 90.0, 2),
    ]
    for message_id, phase, subtask, seconds, simulation in sent:
        assert agent_timing(server.client, message_id, phase, subtask, seconds, simulation).json() == {
            "success": True
        }
    gui(server.client, {"type": "overall_progress", "current": 22, "total": 36}, agentId=AGENT)
    gui(
        server.client,
        {"type": "simulation_details", "simulation_count": 2, "total_simulations": 36, "current_case": "x"},
        agentId=AGENT,
    )
    data = timings_of(server.client, worker_id(server.client))
    assert data["assignmentId"] is None
    assert data["sampleCount"] == 8
    assert [(r["phase"], r["subtask"], r["count"]) for r in data["table"]] == [
        ("setup", None, 2),
        ("setup", "load_phantom", 1),
        ("run", None, 2),
        ("run", "isolve_execution", 1),
        ("extract", None, 1),
    ]
    setup = data["table"][0]
    assert (setup["mean"], setup["median"], setup["min"], setup["max"]) == (15.0, 15.0, 10.0, 20.0)
    assert (setup["p10"], setup["p25"], setup["p75"], setup["p90"]) == (11.0, 12.5, 17.5, 19.0)
    assert [pie["title"] for pie in data["pies"]] == [
        "Phase Weights",
        "Setup Subtasks",
        "Run Subtasks",
        "Extract Subtasks",
    ]
    phases = data["pies"][0]["slices"]
    assert [(s["key"], s["label"], s["seconds"]) for s in phases] == [
        ("setup", "Setup", 15.0),
        ("run", "Run", 86.0),
        ("extract", "Extract", 8.0),
    ]
    assert sum(s["percent"] for s in phases) == pytest.approx(100.0)
    assert data["pies"][2]["slices"] == [
        {"key": "isolve_execution", "label": "iSolve Execution", "seconds": 80.0, "percent": 100.0}
    ]
    assert data["pies"][3]["slices"] == []  # GOLIAT's "No data"
    assert data["summary"] == "[61%] Sim 2/36 · Running"


def test_a_redelivered_timing_is_stored_once(server: LiveServer) -> None:
    for _ in range(3):  # the agent's spool resends what it is not sure was received
        assert agent_timing(server.client, "same-id", "run", None, 42.0, 1).status_code == 200
    data = timings_of(server.client, worker_id(server.client))
    assert data["sampleCount"] == 1
    assert data["table"][0]["count"] == 1


def test_timings_are_kept_apart_from_raw_messages_and_keep_the_worker_alive(server: LiveServer) -> None:
    assert agent_timing(server.client, "m-1", "extract", "sar_statistics", 4.25, 3).status_code == 200
    worker = only_worker(server.client)
    assert worker["status"] == "IDLE"
    stored = server.context.db.read_sync(
        lambda conn: conn.exec_driver_sql(
            "SELECT phase, subtask, seconds, simulation FROM timing_samples"
        ).all()
    )
    assert [tuple(row) for row in stored] == [("extract", "sar_statistics", 4.25, 3)]
    kept = server.context.db.read_sync(
        lambda conn: conn.exec_driver_sql("SELECT count(*) FROM worker_messages").scalar()
    )
    assert kept == 0


def test_the_current_run_is_the_running_assignment_then_the_last_one(server: LiveServer) -> None:
    study = create_study(server.client, count=2)
    first, second = (a["id"] for a in study["assignments"])
    heartbeat(server.client, agentId=AGENT)
    claim = {"machineId": MACHINE, "agentId": AGENT}
    assert server.client.post(f"/api/assignments/{first}/claim", json=claim).status_code == 200
    agent_timing(server.client, "m-1", "run", None, 100.0, 1, assignment_id=first)
    worker = worker_id(server.client)
    assert timings_of(server.client, worker)["assignmentId"] == first
    finished = {"type": "finished", "message": "Study finished successfully"}
    gui(server.client, finished, agentId=AGENT, assignmentId=first)
    # Idle: the page keeps showing the run it finished last, and says it is finished.
    data = timings_of(server.client, worker)
    assert (data["assignmentId"], data["sampleCount"]) == (first, 1)
    assert data["summary"] == "[100%] · Finished"
    # A new assignment starts a fresh table, before its first timing arrives.
    assert server.client.post(f"/api/assignments/{second}/claim", json=claim).status_code == 200
    data = timings_of(server.client, worker)
    assert (data["assignmentId"], data["sampleCount"], data["table"]) == (second, 0, [])
    agent_timing(server.client, "m-2", "run", None, 50.0, 1, assignment_id=second)
    assert [r["mean"] for r in timings_of(server.client, worker)["table"]] == [50.0]


def test_timings_of_an_unknown_worker_are_404(server: LiveServer) -> None:
    assert server.client.get("/api/workers/no-such-worker/timings").status_code == 404


def test_heartbeat_disk_figures_and_progress_eta_reach_the_samples(server: LiveServer) -> None:
    beat = {
        "machineId": MACHINE,
        "agentId": AGENT,
        "messageId": "hb-1",
        "hostname": "vm-01",
        "cpuCores": 16,
        "totalRamGB": 63.9,
        "cpuPercent": 37.5,
        "ramPercent": 48.1,
        "diskReadMBps": 12.345,
        "diskWriteMBps": 0.5,
        "pageFaultsPerSec": 1520.3,
    }
    assert server.client.post("/api/heartbeat", json=beat).status_code == 200
    server.clock.advance(2)
    gui(server.client, {"type": "profiler_update", "eta_seconds": 600}, agentId=AGENT)
    gui(server.client, {"type": "overall_progress", "current": 1, "total": 4}, agentId=AGENT)
    samples = server.client.get(f"/api/workers/{worker_id(server.client)}/samples").json()
    assert len(samples) == 2
    system, progress = samples
    assert (system["diskReadMBps"], system["diskWriteMBps"], system["pageFaultsPerSec"]) == (
        12.345,
        0.5,
        1520.3,
    )
    assert (system["cpuPercent"], system["progress"], system["etaSeconds"]) == (37.5, None, None)
    assert (progress["progress"], progress["etaSeconds"], progress["diskReadMBps"]) == (25.0, 600.0, None)


def test_goliat_heartbeats_without_disk_figures_store_no_sample(server: LiveServer) -> None:
    assert heartbeat(server.client, gpuName="RTX 4090", cpuCores=8).status_code == 200
    assert server.client.get(f"/api/workers/{worker_id(server.client)}/samples").json() == []
    assert heartbeat(server.client, pageFaultsPerSec=3.0).status_code == 200
    (only,) = server.client.get(f"/api/workers/{worker_id(server.client)}/samples").json()
    assert (only["pageFaultsPerSec"], only["diskReadMBps"], only["cpuPercent"]) == (3.0, None, None)
