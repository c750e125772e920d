"""GOLIAT's GUI messages change the worker's live state as its GUI would show it."""

from __future__ import annotations

from tests.api.helpers import MACHINE, gui, heartbeat, log_batch, only_worker
from tests.conftest import LiveServer


def test_heartbeat_registers_worker_with_system_info(server: LiveServer) -> None:
    response = heartbeat(server.client, gpuName="RTX 4090", cpuCores=16, totalRamGB=63.9, hostname="vm-01")
    assert response.status_code == 200
    worker = only_worker(server.client)
    assert worker["ipAddress"] == MACHINE
    assert (worker["hostname"], worker["gpuName"], worker["cpuCores"], worker["totalRamGB"]) == (
        "vm-01",
        "RTX 4090",
        16,
        63.9,
    )
    assert worker["status"] == "IDLE"


def test_older_clients_send_ip_address(server: LiveServer) -> None:
    assert server.client.post("/api/heartbeat", json={"ipAddress": "198.51.100.1"}).status_code == 200
    assert server.client.get("/api/workers").json()[0]["ipAddress"] == "198.51.100.1"


def test_every_protocol_message_type_is_accepted_with_200(server: LiveServer) -> None:
    messages = [
        {"type": "overall_progress", "current": 3, "total": 36},
        {"type": "stage_progress", "name": "Setup", "current": 1, "total": 4, "sub_stage": "Gridding"},
        log_batch(0, [("Starting", "info")]),
        {"type": "status", "message": "older single line", "log_type": "default"},
        {"type": "profiler_update", "eta_seconds": 120.5},
        {"type": "profiler_update", "eta_seconds": None},
        {
            "type": "simulation_details",
            "simulation_count": 3,
            "total_simulations": 36,
            "current_case": "x_pos",
        },
        {"type": "sim_details", "count": 4, "total": 36, "details": "y_pos"},
        {"type": "start_animation", "estimate": 12.0, "end_value": 50},
        {"type": "end_animation"},
        {"type": "print", "message": "console", "stream": "stdout"},
        {"type": "terminal_only", "message": "console only"},
        {"type": "some_future_type", "whatever": [1, 2, 3]},
        {"type": "overall_progress", "current": 5, "total": 0},
        {"type": "finished", "message": "Study finished successfully"},
    ]
    for message in messages:
        response = gui(server.client, message)
        assert response.status_code == 200, (message, response.text)
        assert response.json() == {"success": True}


def test_progress_stage_eta_and_simulation_counter(server: LiveServer) -> None:
    gui(server.client, {"type": "overall_progress", "current": 9, "total": 36})
    gui(server.client, {"type": "stage_progress", "name": "Running simulation", "current": 1, "total": 2})
    gui(
        server.client,
        {
            "type": "simulation_details",
            "simulation_count": 4,
            "total_simulations": 36,
            "current_case": "thelonious 700MHz x_pos_theta",
        },
    )
    gui(server.client, {"type": "profiler_update", "eta_seconds": 3600})
    worker = only_worker(server.client)
    state = worker["guiState"]
    assert worker["status"] == "RUNNING"
    assert state["progress"] == 25.0
    assert state["stageProgress"] == 50.0
    assert state["stage"] == "Running simulation"
    assert (state["simulationCount"], state["totalSimulations"]) == (4, 36)
    assert state["currentCase"] == "thelonious 700MHz x_pos_theta"
    assert state["eta"] is not None and state["eta"].endswith("Z")


def test_zero_total_is_zero_percent_not_an_error(server: LiveServer) -> None:
    assert gui(server.client, {"type": "overall_progress", "current": 1, "total": 0}).status_code == 200
    assert only_worker(server.client)["guiState"]["progress"] == 0.0


def test_warning_and_error_counts_follow_goliat_rules(server: LiveServer) -> None:
    gui(
        server.client,
        log_batch(0, [("a", "warning"), ("b", "highlight"), ("c", "error"), ("d", "fatal"), ("e", "info")]),
    )
    gui(server.client, {"type": "status", "message": "f", "log_type": "warning"})
    state = only_worker(server.client)["guiState"]
    assert (state["warningCount"], state["errorCount"]) == (3, 2)


def test_finished_successfully_makes_worker_idle(server: LiveServer) -> None:
    gui(server.client, {"type": "overall_progress", "current": 50, "total": 100})
    gui(server.client, {"type": "finished", "message": "Study finished successfully"})
    worker = only_worker(server.client)
    assert worker["status"] == "IDLE"
    assert worker["guiState"]["progress"] == 100.0


def test_finished_with_errors_marks_worker_error(server: LiveServer) -> None:
    gui(server.client, {"type": "overall_progress", "current": 50, "total": 100})
    gui(server.client, {"type": "finished", "message": "Study finished with errors"})
    assert only_worker(server.client)["status"] == "ERROR"


def test_fatal_error_marks_worker_error(server: LiveServer) -> None:
    gui(server.client, {"type": "fatal_error", "message": "Sim4Life crashed"})
    assert only_worker(server.client)["status"] == "ERROR"


def test_late_progress_after_finished_does_not_reopen_the_run(server: LiveServer) -> None:
    for _ in range(5):
        gui(server.client, {"type": "overall_progress", "current": 100, "total": 100})
    gui(server.client, {"type": "finished", "message": "Study finished successfully"})
    server.clock.advance(0.2)
    gui(server.client, {"type": "overall_progress", "current": 100, "total": 100})
    gui(server.client, {"type": "stage_progress", "name": "Extract", "current": 3, "total": 3})
    assert only_worker(server.client)["status"] == "IDLE"
    # A real new run, well after the grace period, does reopen it.
    server.clock.advance(server.settings.finish_grace_s + 1)
    gui(server.client, {"type": "overall_progress", "current": 1, "total": 100})
    assert only_worker(server.client)["status"] == "RUNNING"


def test_unknown_types_are_kept(server: LiveServer) -> None:
    gui(server.client, {"type": "brand_new", "payload": {"nested": True}})
    from sqlalchemy import select

    from goliat_monitor.db.tables import worker_messages

    rows = server.context.db.read_sync(lambda conn: conn.execute(select(worker_messages)).mappings().all())
    assert [(r["type"], r["payload"]) for r in rows] == [
        ("brand_new", {"type": "brand_new", "payload": {"nested": True}})
    ]


def test_progress_and_utilisation_are_kept_as_a_time_series(server: LiveServer) -> None:
    heartbeat(
        server.client, cpuPercent=50.0, ramPercent=40.0, gpuPercent=90.0, vramUsedGB=10.0, vramTotalGB=24.0
    )
    for step in range(5):
        gui(server.client, {"type": "overall_progress", "current": step * 10, "total": 100})
        server.clock.advance(1.0)
    worker = only_worker(server.client)
    samples = server.client.get(f"/api/workers/{worker['id']}/samples").json()
    progress = [s["progress"] for s in samples if s["progress"] is not None]
    assert progress == [0.0, 10.0, 20.0, 30.0, 40.0]
    gpu = [s for s in samples if s["gpuPercent"] is not None]
    assert gpu[0]["gpuPercent"] == 90.0 and gpu[0]["vramTotalGB"] == 24.0


def test_progress_samples_are_thinned_to_the_sample_interval(server: LiveServer) -> None:
    for step in range(50):  # 50 messages within one second: GOLIAT's top rate
        gui(server.client, {"type": "overall_progress", "current": step, "total": 100})
    worker = only_worker(server.client)
    samples = server.client.get(f"/api/workers/{worker['id']}/samples").json()
    assert len(samples) == 1


def test_a_bridge_heartbeating_every_30_s_does_not_flicker_offline(server: LiveServer) -> None:
    for _ in range(4):
        heartbeat(server.client)
        for _ in range(6):  # look at the dashboard every 5 s between heartbeats
            server.clock.advance(5)
            assert only_worker(server.client)["status"] == "IDLE"
    server.clock.advance(60)
    assert only_worker(server.client)["status"] == "OFFLINE"


def test_an_agent_heartbeating_every_5_s_is_offline_after_30_s(server: LiveServer) -> None:
    for _ in range(3):
        heartbeat(server.client)
        server.clock.advance(5)
    server.clock.advance(server.settings.offline_after_s - 5 + 1)
    assert only_worker(server.client)["status"] == "OFFLINE"


def test_openapi_schema_lists_every_route(server: LiveServer) -> None:
    schema = server.client.get("/openapi.json").json()
    paths = set(schema["paths"])
    for path in [
        "/api/heartbeat",
        "/api/gui-update",
        "/api/gui-screenshots",
        "/api/super-studies",
        "/api/super-studies/{study_id}",
        "/api/super-studies/{study_id}/assignments",
        "/api/assignments/{assignment_id}/claim",
        "/api/assignments/{assignment_id}/results",
        "/api/assignment",
        "/api/workers",
        "/api/workers/{worker_id}",
        "/api/workers/{worker_id}/logs",
        "/api/health",
        "/api/super-studies/{study_id}/results/list",
        "/api/super-studies/{study_id}/results/file",
        "/api/super-studies/{study_id}/results/download",
        "/api/assignments/{assignment_id}/results/download",
    ]:
        assert path in paths, path
    assert "LogBatch" in schema["components"]["schemas"]


def test_batched_updates_apply_in_order_and_report_each_result(server: LiveServer) -> None:
    from tests.api.helpers import create_study

    study = create_study(server.client, count=1)
    mine = server.client.get("/api/assignment", params={"machineId": MACHINE}).json()
    assert mine["id"] == study["assignments"][0]["id"]
    updates = [
        {"machineId": MACHINE, "messageId": f"m{seq}", "message": log_batch(seq, [(f"line {seq}", "info")])}
        for seq in range(5)
    ]
    updates.insert(
        2,
        {
            "machineId": MACHINE,
            "assignmentId": "not-mine",
            "message": {"type": "overall_progress", "current": 9, "total": 10},
        },
    )
    updates.append(
        {
            "machineId": MACHINE,
            "assignmentId": mine["id"],
            "message": {"type": "overall_progress", "current": 1, "total": 4},
        }
    )
    response = server.client.post("/api/gui-updates", json={"updates": updates})
    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == [200, 200, 409, 200, 200, 200, 200]
    again = server.client.post("/api/gui-updates", json={"updates": updates[:2]})
    assert [r["status"] for r in again.json()["results"]] == [200, 200]  # redelivered ids are dropped
    worker = only_worker(server.client)
    assert [line["message"] for line in worker["guiState"]["logMessages"]] == [
        f"line {seq}" for seq in range(5)
    ]
    assert worker["guiState"]["progress"] == 25.0
    assert server.client.post("/api/gui-updates", json={"updates": []}).status_code == 422
