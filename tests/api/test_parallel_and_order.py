"""Several studies on one machine, late progress and the memory_error ending, with the JSON bodies
exactly as GOLIAT's bridge sends them: `{machineId, message, timestamp}`, log entries stamped with
the time they were made, `sequence` counted per bridge from 0.
"""

from __future__ import annotations

import random
import time
from typing import Any

from tests.api.helpers import MACHINE, create_study, only_worker
from tests.conftest import LiveServer

NOTICE = "2 studies are running on this machine; their logs are interleaved by time."


def _batch_body(sequence: int, lines: list[tuple[float, str]], sent_at: float) -> dict[str, Any]:
    return {
        "machineId": MACHINE,
        "message": {
            "type": "log_batch",
            "logs": [
                {"type": "status", "message": text, "log_type": "info", "timestamp": made}
                for made, text in lines
            ],
            "sequence": sequence,
        },
        "timestamp": sent_at,
    }


def _bridge(study: str, batches: int, *, start: float) -> list[dict[str, Any]]:
    """One study's bridge: batches of two lines 50 ms apart, each sent as it is sealed."""
    bodies = []
    for seq in range(batches):
        lines = [(start + (seq * 2 + n) * 0.05, f"{study} {seq}.{n}") for n in range(2)]
        bodies.append(_batch_body(seq, lines, sent_at=lines[-1][0] + 0.01))
    return bodies


def _post(server: LiveServer, body: dict[str, Any]) -> None:
    response = server.client.post("/api/gui-update", json=body)
    assert response.status_code == 200, response.text


def _messages(server: LiveServer) -> list[str]:
    return [line["message"] for line in only_worker(server.client)["guiState"]["logMessages"]]


def _expected(study: str, batches: int) -> list[str]:
    return [f"{study} {seq}.{n}" for seq in range(batches) for n in range(2)]


def test_two_bridges_on_one_machine_keep_each_studys_order(server: LiveServer) -> None:
    start = time.time()
    a, b = _bridge("A", 12, start=start), _bridge("B", 12, start=start + 0.02)
    arrival = a + b
    random.Random(3).shuffle(arrival)  # two bridges, three sender threads each
    for body in arrival:
        _post(server, body)
    read = _messages(server)
    assert [m for m in read if m.startswith("A")] == _expected("A", 12)
    assert [m for m in read if m.startswith("B")] == _expected("B", 12)
    assert read[:2] == ["A 0.0", "B 0.0"]  # interleaved by the time each line was made
    worker = only_worker(server.client)
    assert worker["concurrentStudies"] == 2
    assert NOTICE in server.client.get(f"/workers/{worker['id']}").text


def test_a_later_run_on_the_machine_reads_after_everything_before_it(server: LiveServer) -> None:
    start = time.time()
    for body in _bridge("A", 4, start=start) + _bridge("B", 4, start=start + 0.01):
        _post(server, body)
    _post(
        server,
        {
            "machineId": MACHINE,
            "message": {"type": "finished", "message": "Study finished successfully"},
            "timestamp": start + 1,
        },
    )
    server.clock.advance(40)
    # The next `goliat study` on this machine id, from a host whose clock runs 30 s behind.
    later = _bridge("C", 4, start=start - 30)
    for index in (1, 0, 3, 2):
        _post(server, later[index])
    read = _messages(server)
    assert read[-8:] == _expected("C", 4)
    worker = only_worker(server.client)
    assert worker["concurrentStudies"] == 1
    assert "studies are running on this machine" not in server.client.get(f"/workers/{worker['id']}").text


def test_one_bridge_reports_one_study(server: LiveServer) -> None:
    for body in _bridge("A", 5, start=time.time()):
        _post(server, body)
    worker = only_worker(server.client)
    assert worker["concurrentStudies"] == 1
    assert "studies are running on this machine" not in server.client.get(f"/workers/{worker['id']}").text


def test_progress_that_arrives_after_a_newer_value_does_not_move_the_bar_back(server: LiveServer) -> None:
    sent = time.time()

    def progress(kind: str, current: float, at: float, **extra: Any) -> None:
        message = {"type": kind, "current": current, "total": 100, **extra}
        _post(server, {"machineId": MACHINE, "message": message, "timestamp": at})

    progress("overall_progress", 61.0, sent + 2)  # the 2 s re-send overtook the earlier value
    progress("overall_progress", 58.0, sent)
    progress("stage_progress", 40.0, sent + 2, name="Running simulation")
    progress("stage_progress", 35.0, sent, name="Setup")
    state = only_worker(server.client)["guiState"]
    assert (state["progress"], state["stageProgress"], state["stage"]) == (61.0, 40.0, "Running simulation")
    progress("overall_progress", 62.5, sent + 4)
    assert only_worker(server.client)["guiState"]["progress"] == 62.5


def test_a_new_run_after_finished_takes_progress_whatever_its_clock(server: LiveServer) -> None:
    sent = time.time()
    _post(
        server,
        {
            "machineId": MACHINE,
            "message": {"type": "overall_progress", "current": 100, "total": 100},
            "timestamp": sent,
        },
    )
    _post(
        server,
        {
            "machineId": MACHINE,
            "message": {"type": "finished", "message": "Study finished successfully"},
            "timestamp": sent,
        },
    )
    server.clock.advance(60)
    _post(
        server,
        {
            "machineId": MACHINE,
            "message": {"type": "overall_progress", "current": 3, "total": 100},
            "timestamp": sent - 20,
        },
    )
    assert only_worker(server.client)["guiState"]["progress"] == 3.0


def _study_assignment(server: LiveServer, study_id: str) -> dict[str, Any]:
    study = server.client.get(f"/api/super-studies/{study_id}").json()
    first: dict[str, Any] = study["assignments"][0]
    return first


def _claim(server: LiveServer, assignment_id: str) -> None:
    claimed = server.client.post(f"/api/assignments/{assignment_id}/claim", json={"machineId": MACHINE})
    assert claimed.status_code == 200, claimed.text


def test_memory_error_retries_and_the_finished_with_errors_after_it_does_not_fail(server: LiveServer) -> None:
    study = create_study(server.client, count=1)
    assignment_id = study["assignments"][0]["id"]
    _claim(server, assignment_id)
    sent = time.time()
    _post(
        server,
        {
            "machineId": MACHINE,
            "message": {
                "type": "memory_error",
                "message": "Memory/allocation error detected",
                "exit_code": 42,
            },
            "timestamp": sent,
        },
    )
    for _ in range(5):  # GOLIAT's send_finished: 100 % five times, then `finished`
        _post(
            server,
            {
                "machineId": MACHINE,
                "message": {"type": "overall_progress", "current": 100, "total": 100},
                "timestamp": sent + 1,
            },
        )
    _post(
        server,
        {
            "machineId": MACHINE,
            "message": {"type": "finished", "message": "Study finished with errors"},
            "timestamp": sent + 2.5,
        },
    )
    assignment = _study_assignment(server, study["id"])
    assert assignment["status"] == "PENDING"
    assert assignment["exitCode"] == 42
    assert assignment["errorMessage"] == "Memory/allocation error detected"


def test_the_finished_after_a_memory_error_leaves_the_retry_running(server: LiveServer) -> None:
    study = create_study(server.client, count=1)
    assignment_id = study["assignments"][0]["id"]
    _claim(server, assignment_id)
    sent = time.time()
    _post(
        server,
        {
            "machineId": MACHINE,
            "message": {
                "type": "memory_error",
                "message": "Memory/allocation error detected",
                "exit_code": 42,
            },
            "timestamp": sent,
        },
    )
    _claim(server, assignment_id)  # `goliat worker` claims it again, before the late `finished` lands
    _post(
        server,
        {
            "machineId": MACHINE,
            "message": {"type": "finished", "message": "Study finished with errors"},
            "timestamp": sent + 2.5,
        },
    )
    assignment = _study_assignment(server, study["id"])
    assert (assignment["status"], assignment["attempts"]) == ("RUNNING", 2)
    # A real failure of the retry, later, still ends it.
    server.clock.advance(server.settings.finish_grace_s + 60)
    _post(
        server,
        {
            "machineId": MACHINE,
            "message": {"type": "finished", "message": "Study finished with errors"},
            "timestamp": sent + 100,
        },
    )
    assert _study_assignment(server, study["id"])["status"] == "FAILED"


def test_a_study_whose_configs_extend_a_parent_the_server_lacks_says_so(server: LiveServer) -> None:
    # What GOLIAT's `super_study` sends: split configs that still name their parent, no parents.
    body = {
        "name": "extends-campaign",
        "description": "",
        "baseConfig": {"extends": "base_config.json", "study_type": "far_field"},
        "assignments": [
            {"splitConfig": {"extends": "base_config.json", "frequencies_mhz": [f]}, "status": "PENDING"}
            for f in (700, 900)
        ],
    }
    created = server.client.post("/api/super-studies", json=body)
    assert created.status_code == 200, created.text
    study = server.client.get(f"/api/super-studies/{created.json()['id']}").json()
    assert len(study["warnings"]) == 1
    assert study["warnings"][0].startswith("Assignments 0, 1: parent config 'base_config.json'")
    page = server.client.get(f"/super-studies/{study['id']}").text
    assert "parent config &#39;base_config.json&#39; named by &#39;extends&#39; was not found" in page

    with_parent = {
        **body,
        "name": "with-parent",
        "parentConfigs": {"base_config.json": {"phantoms": ["duke"]}},
    }
    fine = server.client.post("/api/super-studies", json=with_parent).json()
    assert server.client.get(f"/api/super-studies/{fine['id']}").json()["warnings"] == []
    assert 'id="study-warnings"' not in server.client.get(f"/super-studies/{fine['id']}").text
