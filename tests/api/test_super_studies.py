"""Super studies through GOLIAT's own calls: create, look up by name, claim, finish."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.api.helpers import create_study, gui, heartbeat, only_worker
from tests.conftest import LiveServer


def test_create_answers_exactly_200_with_goliat_fields(server: LiveServer) -> None:
    study = create_study(server.client, count=4)
    assert study["totalAssignments"] == 4
    assert study["completedAssignments"] == 0
    assert study["status"] == "PENDING"
    assert [a["index"] for a in study["assignments"]] == [0, 1, 2, 3]


def test_lookup_by_name_is_a_list_newest_first(server: LiveServer) -> None:
    first = create_study(server.client, name="a")
    server.clock.advance(1)
    second = create_study(server.client, name="b")
    found = server.client.get("/api/super-studies", params={"name": "a"}).json()
    assert [s["id"] for s in found] == [first["id"]]
    assert {"id", "name", "totalAssignments", "completedAssignments", "status", "masterProgress"} <= set(
        found[0]
    )
    everything = server.client.get("/api/super-studies").json()
    assert [s["id"] for s in everything] == [second["id"], first["id"]]
    assert server.client.get("/api/super-studies", params={"name": "missing"}).json() == []


def test_live_names_are_unique_unless_replaced(server: LiveServer) -> None:
    create_study(server.client, name="same")
    body = {"name": "same", "assignments": [{"splitConfig": {}, "status": "PENDING"}]}
    clash = server.client.post("/api/super-studies", json=body)
    assert clash.status_code == 409 and "same" in clash.json()["error"]
    replaced = server.client.post("/api/super-studies", json={**body, "replace": True})
    assert replaced.status_code == 200
    assert len(server.client.get("/api/super-studies", params={"name": "same"}).json()) == 1


def test_goliat_worker_flow_claim_progress_finish(server: LiveServer) -> None:
    study = create_study(server.client, count=2)
    assignments = server.client.get(f"/api/super-studies/{study['id']}/assignments").json()
    assert [a["status"] for a in assignments] == ["PENDING", "PENDING"]
    target = assignments[1]
    claimed = server.client.post(f"/api/assignments/{target['id']}/claim", json={"machineId": "10.0.0.1"})
    assert claimed.status_code == 200
    assert claimed.json()["splitConfig"] == target["splitConfig"]
    heartbeat(server.client, machine="10.0.0.1", hostname="vm")
    gui(server.client, {"type": "overall_progress", "current": 40, "total": 100}, machine="10.0.0.1")
    mid = server.client.get(f"/api/super-studies/{study['id']}").json()
    assert mid["status"] == "RUNNING"
    assert mid["assignments"][1]["progress"] == 40.0
    assert mid["masterProgress"] == 20.0
    gui(server.client, {"type": "finished", "message": "Study finished successfully"}, machine="10.0.0.1")
    done = server.client.get(f"/api/super-studies/{study['id']}").json()
    assert done["assignments"][1]["status"] == "COMPLETED"
    assert done["completedAssignments"] == 1
    assert done["masterProgress"] == 50.0
    assert only_worker(server.client)["status"] == "IDLE"


def test_finished_with_errors_fails_the_assignment_with_its_message(server: LiveServer) -> None:
    study = create_study(server.client, count=1)
    assignment = study["assignments"][0]
    server.client.post(f"/api/assignments/{assignment['id']}/claim", json={"machineId": "10.0.0.2"})
    gui(server.client, {"type": "finished", "message": "Study finished with errors"}, machine="10.0.0.2")
    failed = server.client.get(f"/api/super-studies/{study['id']}").json()
    assert failed["assignments"][0]["status"] == "FAILED"
    assert failed["assignments"][0]["errorMessage"] == "Study finished with errors"
    assert failed["status"] == "FAILED"
    assert only_worker(server.client)["status"] == "ERROR"


def test_claim_race_exactly_one_winner(server: LiveServer) -> None:
    study = create_study(server.client, count=1)
    assignment_id = study["assignments"][0]["id"]

    def claim(n: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            return client.post(f"/api/assignments/{assignment_id}/claim", json={"machineId": f"10.1.0.{n}"})

    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(claim, range(50)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1 and statuses.count(409) == 49, statuses
    winner = next(r for r in responses if r.status_code == 200).json()["machineId"]
    for response in responses:
        if response.status_code == 409:
            assert winner in response.json()["error"]
    # The holder retrying its claim still gets 200.
    again = server.client.post(f"/api/assignments/{assignment_id}/claim", json={"machineId": winner})
    assert again.status_code == 200


def test_pull_endpoint_hands_out_each_assignment_once_in_order(server: LiveServer) -> None:
    older = create_study(server.client, name="older", count=2)
    server.clock.advance(1)
    create_study(server.client, name="newer", count=1)

    def pull(n: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            return client.get("/api/assignment", params={"machineId": f"10.2.0.{n}"})

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(pull, range(10)))
    given = [r.json() for r in responses if r.status_code == 200]
    assert sorted(r.status_code for r in responses) == [200] * 3 + [204] * 7
    assert len({a["id"] for a in given}) == 3
    # Oldest study first, lowest index first: a fresh machine after the rush gets nothing more.
    assert {(a["superStudyId"], a["index"]) for a in given} >= {(older["id"], 0), (older["id"], 1)}
    assert pull(99).status_code == 204


def test_pull_returns_the_running_assignment_again_to_its_holder(server: LiveServer) -> None:
    create_study(server.client, count=2)
    first = server.client.get("/api/assignment", params={"machineId": "10.3.0.1"}).json()
    again = server.client.get("/api/assignment", params={"machineId": "10.3.0.1"}).json()
    assert first["id"] == again["id"] and first["index"] == 0


def test_claim_unknown_assignment_is_404(server: LiveServer) -> None:
    response = server.client.post("/api/assignments/nope/claim", json={"machineId": "x"})
    assert response.status_code == 404 and "error" in response.json()


def test_delete_study_removes_it(server: LiveServer) -> None:
    study = create_study(server.client)
    assert server.client.delete(f"/api/super-studies/{study['id']}").status_code == 200
    assert server.client.get(f"/api/super-studies/{study['id']}").status_code == 404
    assert server.client.delete(f"/api/super-studies/{study['id']}").status_code == 404


def test_offline_machine_returns_with_new_session_and_keeps_its_assignment(server: LiveServer) -> None:
    study = create_study(server.client, count=1)
    server.client.post(
        f"/api/assignments/{study['assignments'][0]['id']}/claim", json={"machineId": "10.4.0.1"}
    )
    gui(server.client, {"type": "overall_progress", "current": 10, "total": 100}, machine="10.4.0.1")
    old_id = only_worker(server.client)["id"]
    server.clock.advance(server.settings.offline_after_s + 1)
    assert only_worker(server.client)["status"] == "OFFLINE"
    gui(server.client, {"type": "overall_progress", "current": 20, "total": 100}, machine="10.4.0.1")
    worker = only_worker(server.client)
    assert worker["id"] != old_id and worker["status"] == "RUNNING"
    assignment = server.client.get(f"/api/super-studies/{study['id']}").json()["assignments"][0]
    assert assignment["workerId"] == worker["id"] and assignment["progress"] == 20.0
    stale = server.client.get("/api/workers", params={"includeStale": "true"}).json()
    assert {w["id"] for w in stale} == {old_id, worker["id"]}
