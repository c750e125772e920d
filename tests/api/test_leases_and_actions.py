"""Leases, retries, cancellation and the people's actions, with a fake clock (no sleeping)."""

from __future__ import annotations

from typing import Any, cast

from goliat_monitor.config_files import read_config
from goliat_monitor.server import services
from tests.api.helpers import create_study, gui, heartbeat
from tests.conftest import TEST_CONFIGS, LiveServer


def pull(server: LiveServer, machine: str) -> dict[str, Any] | None:
    response = server.client.get("/api/assignment", params={"machineId": machine})
    return None if response.status_code == 204 else cast(dict[str, Any], response.json())


def study(server: LiveServer, study_id: str) -> dict[str, Any]:
    return cast(dict[str, Any], server.client.get(f"/api/super-studies/{study_id}").json())


def expire(server: LiveServer) -> int:
    return server.run(services.expire_leases(server.context))


def test_lapsed_lease_goes_back_to_pending_and_the_next_worker_gets_it(server: LiveServer) -> None:
    created = create_study(server.client, count=1)
    first = pull(server, "10.0.0.1")
    assert first is not None and first["attempts"] == 1
    server.clock.advance(server.settings.lease_timeout_s - 1)
    heartbeat(server.client, machine="10.0.0.1")  # renews the lease
    server.clock.advance(server.settings.lease_timeout_s - 1)
    assert expire(server) == 0
    server.clock.advance(2)
    assert expire(server) == 1
    again = study(server, created["id"])["assignments"][0]
    assert (again["status"], again["attempts"], again["workerId"]) == ("PENDING", 1, None)
    second = pull(server, "10.0.0.2")
    assert second is not None and second["id"] == first["id"] and second["attempts"] == 2
    events = [(e["from"], e["to"]) for e in study(server, created["id"])["events"]]
    assert events == [("PENDING", "RUNNING"), ("RUNNING", "PENDING"), ("PENDING", "RUNNING")]


def test_lease_expiry_also_happens_lazily_when_a_worker_asks(server: LiveServer) -> None:
    create_study(server.client, count=1)
    assert pull(server, "10.0.0.1") is not None
    server.clock.advance(server.settings.lease_timeout_s + 1)
    assert pull(server, "10.0.0.2") is not None


def test_returning_worker_whose_assignment_was_taken_gets_409(server: LiveServer) -> None:
    create_study(server.client, count=1)
    mine = pull(server, "10.0.0.1")
    assert mine is not None
    server.clock.advance(server.settings.lease_timeout_s + 1)
    theirs = pull(server, "10.0.0.2")
    assert theirs is not None and theirs["id"] == mine["id"]
    late = gui(
        server.client,
        {"type": "overall_progress", "current": 90, "total": 100},
        machine="10.0.0.1",
        assignmentId=mine["id"],
    )
    assert late.status_code == 409
    gui(
        server.client,
        {"type": "overall_progress", "current": 10, "total": 100},
        machine="10.0.0.2",
        assignmentId=mine["id"],
    )
    current = server.client.get(f"/api/assignments/{mine['id']}").json()
    assert current["progress"] == 10.0 and current["machineId"] == "10.0.0.2"
    # GOLIAT's own bridge (no assignment id) cannot touch it either: its session let go of it.
    gui(server.client, {"type": "finished", "message": "Study finished successfully"}, machine="10.0.0.1")
    assert server.client.get(f"/api/assignments/{mine['id']}").json()["status"] == "RUNNING"


def test_returning_worker_keeps_its_assignment_if_nobody_took_it(server: LiveServer) -> None:
    create_study(server.client, count=1)
    mine = pull(server, "10.0.0.1")
    assert mine is not None
    server.clock.advance(server.settings.offline_after_s + 5)  # offline, lease still valid
    ok = gui(
        server.client,
        {"type": "overall_progress", "current": 50, "total": 100},
        machine="10.0.0.1",
        assignmentId=mine["id"],
    )
    assert ok.status_code == 200
    assert server.client.get(f"/api/assignments/{mine['id']}").json()["progress"] == 50.0


def test_out_of_memory_is_retried_until_max_attempts_then_failed(server: LiveServer) -> None:
    created = create_study(server.client, count=1, maxAttempts=2)
    for attempt, machine in enumerate(["10.0.0.1", "10.0.0.2"], start=1):
        got = pull(server, machine)
        assert got is not None and got["attempts"] == attempt
        gui(
            server.client,
            {"type": "finished", "message": "out of GPU memory", "exit_code": 42},
            machine=machine,
        )
    final = study(server, created["id"])
    assert final["assignments"][0]["status"] == "FAILED"
    assert final["assignments"][0]["exitCode"] == 42
    assert final["status"] == "FAILED" and final["failedAssignments"] == 1
    assert pull(server, "10.0.0.3") is None


def test_fatal_error_is_not_retried_unless_the_policy_says_so(server: LiveServer) -> None:
    strict = create_study(server.client, name="strict", count=1)
    pull(server, "10.0.0.1")
    gui(server.client, {"type": "fatal_error", "message": "bad"}, machine="10.0.0.1")
    assert study(server, strict["id"])["assignments"][0]["status"] == "FAILED"
    lenient = create_study(server.client, name="lenient", count=1, retryFatal=True)
    pull(server, "10.0.0.2")
    gui(server.client, {"type": "fatal_error", "message": "bad"}, machine="10.0.0.2")
    assert study(server, lenient["id"])["assignments"][0]["status"] == "PENDING"


def test_cancel_stops_pending_and_tells_running_agents(server: LiveServer) -> None:
    created = create_study(server.client, count=3)
    running = pull(server, "10.0.0.1")
    assert running is not None
    cancelled = server.client.post(f"/api/super-studies/{created['id']}/cancel").json()
    statuses = [a["status"] for a in cancelled["assignments"]]
    assert statuses == ["RUNNING", "CANCELLED", "CANCELLED"]
    assert cancelled["assignments"][0]["stopRequested"] is True
    beat = server.client.post(
        "/api/heartbeat", json={"machineId": "10.0.0.1", "assignmentId": running["id"]}
    ).json()
    assert beat["stopAssignmentIds"] == [running["id"]]
    assert pull(server, "10.0.0.9") is None
    gui(
        server.client,
        {"type": "finished", "message": "Study finished with errors", "exit_code": 1},
        machine="10.0.0.1",
        assignmentId=running["id"],
    )
    final = study(server, created["id"])
    assert [a["status"] for a in final["assignments"]] == ["CANCELLED"] * 3
    assert final["status"] == "CANCELLED"


def test_retry_requeue_and_reassign(server: LiveServer) -> None:
    created = create_study(server.client, count=2)
    first = pull(server, "10.0.0.1")
    assert first is not None
    gui(server.client, {"type": "finished", "message": "Study finished with errors"}, machine="10.0.0.1")
    retried = server.client.post(f"/api/assignments/{first['id']}/retry").json()
    assert retried["assignments"][0]["status"] == "PENDING" and retried["assignments"][0]["attempts"] == 0
    assert server.client.post(f"/api/assignments/{first['id']}/retry").status_code == 409

    running = pull(server, "10.0.0.2")
    assert running is not None and running["index"] == 0
    requeued = server.client.post(f"/api/assignments/{running['id']}/requeue").json()
    assert requeued["assignments"][0]["status"] == "PENDING"
    stale = gui(
        server.client,
        {"type": "overall_progress", "current": 5, "total": 10},
        machine="10.0.0.2",
        assignmentId=running["id"],
    )
    assert stale.status_code == 409

    reassigned = server.client.post(
        f"/api/assignments/{running['id']}/reassign", json={"machineId": "10.0.0.7"}
    )
    assert reassigned.json()["assignments"][0]["reservedFor"] == "10.0.0.7"
    other = pull(server, "10.0.0.3")
    assert other is not None and other["index"] == 1  # index 0 is reserved for someone else
    target = pull(server, "10.0.0.7")
    assert target is not None and target["id"] == running["id"]
    reasons = [e["reason"] for e in study(server, created["id"])["events"]]
    assert "requeued by request" in reasons and "reassigned to 10.0.0.7" in reasons


def test_master_progress_is_weighted_by_work_and_ignores_failed(server: LiveServer) -> None:
    body = {
        "name": "weighted",
        "assignments": [
            {"splitConfig": {}, "status": "PENDING", "size": 3},
            {"splitConfig": {}, "status": "PENDING", "size": 1},
            {"splitConfig": {}, "status": "PENDING", "size": 4},
        ],
    }
    created = server.client.post("/api/super-studies", json=body).json()
    a = pull(server, "10.0.0.1")
    b = pull(server, "10.0.0.2")
    c = pull(server, "10.0.0.3")
    assert a and b and c
    gui(server.client, {"type": "overall_progress", "current": 50, "total": 100}, machine="10.0.0.1")
    gui(server.client, {"type": "finished", "message": "Study finished successfully"}, machine="10.0.0.2")
    gui(server.client, {"type": "finished", "message": "Study finished with errors"}, machine="10.0.0.3")
    result = study(server, created["id"])
    # (3 × 50 % + 1 × 100 %) / (3 + 1); the failed piece is counted apart.
    assert result["masterProgress"] == 62.5
    assert result["failedAssignments"] == 1 and result["completedAssignments"] == 1


def test_study_eta_from_throughput(server: LiveServer) -> None:
    body = {
        "name": "eta",
        "assignments": [{"splitConfig": {}, "status": "PENDING", "size": 10} for _ in range(2)],
    }
    created = server.client.post("/api/super-studies", json=body).json()
    pull(server, "10.0.0.1")
    server.clock.advance(3600)
    heartbeat(server.client, machine="10.0.0.1")
    gui(server.client, {"type": "overall_progress", "current": 50, "total": 100}, machine="10.0.0.1")
    result = study(server, created["id"])
    # 5 simulations in an hour; 15 left -> three more hours.
    assert result["simulationsPerHour"] == 5.0
    assert abs(result["etaSeconds"] - 3 * 3600) < 1


def test_split_preview_on_the_server_matches_the_cli(server: LiveServer) -> None:
    config, parents = read_config(TEST_CONFIGS, "far_field_config.json")
    preview = server.client.post(
        "/api/super-studies/split",
        json={
            "config": config,
            "parentConfigs": parents,
            "strategy": "auto",
            "numSplits": 8,
        },
    )
    assert preview.status_code == 200, preview.text
    data = preview.json()
    assert len(data["assignments"]) == 8
    assert sum(a["size"] for a in data["assignments"]) == data["totalSimulations"] == 432
    created = server.client.post(
        "/api/super-studies",
        json={
            "name": "from-browser",
            "baseConfig": config,
            "parentConfigs": parents,
            "assignments": data["assignments"],
        },
    ).json()
    assert [a["size"] for a in created["assignments"]] == [a["size"] for a in data["assignments"]]
    assert created["parentConfigs"] == parents == {"base_config.json": parents["base_config.json"]}
    refused = server.client.post("/api/super-studies/split", json={"config": config, "strategy": "scenario"})
    assert refused.status_code == 400 and refused.json()["error"]
    unknown = server.client.post("/api/super-studies/split", json={"config": config, "strategy": "nope"})
    assert unknown.status_code == 400


def test_sizes_are_counted_for_goliat_created_studies(server: LiveServer) -> None:
    config, _parents = read_config(TEST_CONFIGS, "far_field_config.json")
    split = {**config, "phantoms": ["thelonious"], "frequencies_mhz": [700, 835]}
    created = server.client.post(
        "/api/super-studies",
        json={
            "name": "g",
            "baseConfig": config,
            "assignments": [{"splitConfig": split, "status": "PENDING"}],
        },
    ).json()
    assert created["assignments"][0]["size"] == 2 * 6 * 2
