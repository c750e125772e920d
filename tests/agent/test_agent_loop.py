"""The whole agent loop against a scripted server (httpx.MockTransport) and real study processes."""

from __future__ import annotations

import json
import re
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from goliat_monitor.agent.assignment import (
    STATE_FILE,
    RunState,
    _parent_path,
    build_command,
    enabled_phases,
    safe_name,
)
from goliat_monitor.agent.loop import FAILURE_TEXT, STOPPED_TEXT, SUCCESS_TEXT, Agent
from goliat_monitor.agent.result_uploads import result_folders as _result_folders
from goliat_monitor.agent.runner import AGENT_PREFIX
from goliat_monitor.agent.system_info import SystemProbe
from goliat_monitor.settings import AgentSettings
from tests.support import wait_for

GREEN, RESET = "\x1b[32m", "\x1b[0m"


class ScriptedServer:
    """Just enough of the server: hands out assignments, records what the agent sends."""

    def __init__(self, assignments: list[dict[str, Any]]) -> None:
        self.queue = list(assignments)
        self.running: dict[str, Any] | None = None
        self.updates: list[dict[str, Any]] = []
        self.uploads: list[tuple[str, str, list[str]]] = []
        self.heartbeats: list[dict[str, Any]] = []
        self.stop: set[str] = set()
        self.taken: set[str] = set()
        self.failing_uploads = 0
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            return self._handle(request)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/assignment":
            if self.running is None and self.queue:
                self.running = self.queue.pop(0)
            if self.running is None:
                return httpx.Response(204)
            return httpx.Response(200, json=self.running)
        if path == "/api/heartbeat":
            beat = json.loads(request.content)
            self.heartbeats.append(beat)
            stop = [beat["assignmentId"]] if beat.get("assignmentId") in self.stop else []
            return httpx.Response(200, json={"success": True, "stopAssignmentIds": stop})
        if path == "/api/gui-update":
            body = json.loads(request.content)
            kind = body["message"]["type"]
            if body.get("assignmentId") in self.taken and kind != "finished":
                return httpx.Response(409, json={"error": "no longer yours"})
            self.updates.append(body)
            if kind == "finished" and self.running and body.get("assignmentId") == self.running["id"]:
                self.running = None
            return httpx.Response(200, json={"success": True})
        if match := re.fullmatch(r"/api/assignments/([^/]+)/results", path):
            content = request.read()
            if self.failing_uploads > 0:
                self.failing_uploads -= 1
                return httpx.Response(503, json={"error": "down"})
            relative = re.search(rb'name="relativePath"\r\n\r\n([^\r]*)', content)
            names = [n.decode() for n in re.findall(rb'name="files"; filename="([^"]+)"', content)]
            self.uploads.append((match.group(1), relative.group(1).decode() if relative else "", names))
            return httpx.Response(200, json={"success": True})
        return httpx.Response(404, json={"error": path})

    # -- views -------------------------------------------------------------------------------------

    def messages(self, assignment_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                u["message"]
                for u in self.updates
                if assignment_id is None or u.get("assignmentId") == assignment_id
            ]

    def lines(self, assignment_id: str) -> list[str]:
        return [
            entry["message"]
            for m in self.messages(assignment_id)
            if m["type"] == "log_batch"
            for entry in m["logs"]
        ]

    def finished(self, assignment_id: str) -> list[dict[str, Any]]:
        return [m for m in self.messages(assignment_id) if m["type"] == "finished"]


def study_script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake_study.py"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return f'"{sys.executable}" "{path}" {{config}}'


class Harness:
    def __init__(self, tmp_path: Path, server: ScriptedServer, command: str) -> None:
        self.tmp_path = tmp_path
        self.server = server
        self.command = command
        self.work_dir = tmp_path / "work"
        self.agent: Agent | None = None
        self.thread: threading.Thread | None = None
        self.result: list[int] = []

    def start(self) -> Agent:
        settings = AgentSettings(
            server_url="http://server.test",
            work_dir=self.work_dir,
            command=self.command,
            heartbeat_interval_s=0.1,
            idle_poll_max_s=0.1,
            retry_cap_s=0.2,
            stop_grace_s=5,
        )
        agent = Agent(
            settings,
            machine_id="203.0.113.7",
            live_console=False,
            transport=httpx.MockTransport(self.server),
            probe=SystemProbe(nvidia_smi=None),
            log_level=None,
        )
        self.agent = agent
        self.thread = threading.Thread(target=lambda: self.result.append(agent.run()), daemon=True)
        self.thread.start()
        return agent

    def stop(self) -> None:
        if self.agent is not None and self.thread is not None:
            self.agent.request_stop()
            self.thread.join(30)
            assert not self.thread.is_alive(), "the agent did not stop"
            assert self.result == [0]


@pytest.fixture
def harnesses() -> Iterator[list[Harness]]:
    made: list[Harness] = []
    yield made
    for harness in made:
        if harness.thread is not None and harness.thread.is_alive():
            harness.stop()


def assignment(aid: str = "a1", **extra: Any) -> dict[str, Any]:
    return {
        "id": aid,
        "index": 0,
        "attempts": 1,
        "superStudyName": "campaign 1",
        "splitConfig": {"extends": "base_config.json", "study_type": "far_field", "phantoms": ["ella"]},
        "parentConfigs": {"base_config.json": {"execution_control": {"do_setup": False}}},
        "stopRequested": False,
        **extra,
    }


SUCCESS_STUDY = """
    import json, os, pathlib, sys
    config = pathlib.Path(sys.argv[1])
    assert json.loads(config.read_text())["phantoms"] == ["ella"]
    assert (config.parent / "base_config.json").is_file()
    print(os.environ["GOLIAT_ASSIGNMENT_ID"], flush=True)
    for n in range(25):
        print(f"\\x1b[32m    - Memory usage at {n}%, reloading project to free memory...\\x1b[0m", flush=True)
    folder = pathlib.Path("results/far_field/ella/700MHz/environmental_x_pos_theta")
    folder.mkdir(parents=True)
    (folder / "sar_results.json").write_text("{}")
    (folder / "verbose.log").write_text("log")
    (folder / "project_Output.h5").write_bytes(b"huge field data")
    sys.exit(int(os.environ.get("EXIT_CODE", "0")))
"""


def test_an_assignment_runs_reports_uploads_and_finishes(tmp_path: Path, harnesses: list[Harness]) -> None:
    server = ScriptedServer([assignment()])
    harness = Harness(tmp_path, server, study_script(tmp_path, SUCCESS_STUDY))
    harnesses.append(harness)
    agent = harness.start()

    wait_for(lambda: server.finished("a1"), what="finished")
    harness.stop()

    assert server.finished("a1") == [{"type": "finished", "message": SUCCESS_TEXT, "exit_code": 0}]
    assert server.messages("a1")[-1]["type"] == "finished"  # nothing of the run after it
    lines = [line for line in server.lines("a1") if not line.startswith(AGENT_PREFIX)]
    assert lines == [f"    - Memory usage at {n}%, reloading project to free memory..." for n in range(25)]
    batches = [m for m in server.messages("a1") if m["type"] == "log_batch"]
    assert [b["sequence"] for b in batches] == list(range(len(batches)))
    notices = [line for line in server.lines("a1") if line.startswith(AGENT_PREFIX)]
    assert any("Study exited with code 0" in n for n in notices)
    assert server.uploads == [
        ("a1", "far_field/ella/700MHz/environmental_x_pos_theta", ["sar_results.json", "verbose.log"])
    ]
    bodies = [u for u in server.updates if u.get("assignmentId") == "a1"]
    assert all(b["machineId"] == "203.0.113.7" and b["agentId"] == agent.agent_id for b in bodies)
    assert len({b["messageId"] for b in bodies}) == len(bodies)
    config = harness.work_dir / "campaign_1_assignment_0.json"
    assert json.loads(config.read_text())["extends"] == "base_config.json"
    run_dir = next((harness.work_dir / "runs").iterdir())
    state = RunState.load(run_dir / STATE_FILE)
    assert state is not None and state.phase == "done"
    assert (run_dir / "agent-console.log").read_text().startswith("a1\n")
    assert any(beat.get("cpuCores") for beat in server.heartbeats)


@pytest.mark.parametrize("code", [42, 3])
def test_a_failing_study_reports_its_exit_code(
    tmp_path: Path, harnesses: list[Harness], monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    monkeypatch.setenv("EXIT_CODE", str(code))
    server = ScriptedServer([assignment()])
    harness = Harness(tmp_path, server, study_script(tmp_path, SUCCESS_STUDY))
    harnesses.append(harness)
    harness.start()
    wait_for(lambda: server.finished("a1"), what="finished")
    harness.stop()
    assert server.finished("a1") == [{"type": "finished", "message": FAILURE_TEXT, "exit_code": code}]
    assert len(server.uploads) == 1  # what it produced is uploaded all the same


def test_uploads_are_retried_until_the_server_takes_them(tmp_path: Path, harnesses: list[Harness]) -> None:
    server = ScriptedServer([assignment()])
    server.failing_uploads = 3
    harness = Harness(tmp_path, server, study_script(tmp_path, SUCCESS_STUDY))
    harnesses.append(harness)
    harness.start()
    wait_for(lambda: server.finished("a1"), what="finished")
    harness.stop()
    assert server.failing_uploads == 0
    assert [names for _, _, names in server.uploads] == [["sar_results.json", "verbose.log"]]


SLOW_STUDY = """
    import time
    print("\\x1b[32m    - Wait for results...\\x1b[0m", flush=True)
    try:
        time.sleep(60)
    except KeyboardInterrupt:
        print("\\x1b[33m--- Study execution cancelled by user. ---\\x1b[0m", flush=True)
        raise SystemExit(1)
"""


def started(server: ScriptedServer, aid: str = "a1") -> bool:
    return "    - Wait for results..." in server.lines(aid)


@pytest.mark.skipif(sys.platform == "win32", reason="CTRL_BREAK_EVENT needs a console")
def test_a_stop_from_the_heartbeat_answer_stops_the_study(tmp_path: Path, harnesses: list[Harness]) -> None:
    server = ScriptedServer([assignment()])
    harness = Harness(tmp_path, server, study_script(tmp_path, SLOW_STUDY))
    harnesses.append(harness)
    harness.start()
    wait_for(lambda: started(server), what="the study to start")

    server.stop.add("a1")
    finished = wait_for(lambda: server.finished("a1"), what="finished", timeout=20)
    harness.stop()

    assert finished == [{"type": "finished", "message": STOPPED_TEXT, "exit_code": 1}]
    assert "--- Study execution cancelled by user. ---" in server.lines("a1")
    assert server.uploads == []


@pytest.mark.skipif(sys.platform == "win32", reason="CTRL_BREAK_EVENT needs a console")
def test_a_409_stops_the_study(tmp_path: Path, harnesses: list[Harness]) -> None:
    server = ScriptedServer([assignment()])
    harness = Harness(tmp_path, server, study_script(tmp_path, SLOW_STUDY))
    harnesses.append(harness)
    agent = harness.start()
    wait_for(lambda: started(server), what="the study to start")

    server.taken.add("a1")
    agent._append("a1", {"type": "status", "message": "poke", "log_type": "info"})  # meets the 409
    wait_for(lambda: server.finished("a1"), what="finished", timeout=20)
    harness.stop()
    assert server.finished("a1")[0]["message"] == STOPPED_TEXT


@pytest.mark.skipif(sys.platform == "win32", reason="CTRL_BREAK_EVENT needs a console")
def test_ctrl_c_keeps_the_files_sends_no_finished_and_a_restart_resumes(
    tmp_path: Path, harnesses: list[Harness]
) -> None:
    server = ScriptedServer([assignment()])
    harness = Harness(tmp_path, server, study_script(tmp_path, SLOW_STUDY))
    harnesses.append(harness)
    agent = harness.start()
    wait_for(lambda: started(server), what="the study to start")

    harness.stop()  # Ctrl-C: the study is interrupted, the server is told, no `finished`

    assert server.finished("a1") == []
    lines = server.lines("a1")
    assert any(line.startswith(AGENT_PREFIX + "Agent stopped by its user") for line in lines)
    assert any(m["type"] == "status" and "Agent stopped" in m["message"] for m in server.messages(None))
    run_dir = next((harness.work_dir / "runs").iterdir())
    assert (run_dir / "agent-console.log").exists()
    state = RunState.load(run_dir / STATE_FILE)
    assert state is not None and state.phase == "running"

    # The server still holds the assignment for us; a new agent on the same work dir reruns it.
    again = Harness(tmp_path, server, study_script(tmp_path, SUCCESS_STUDY))
    harnesses.append(again)
    restarted = again.start()
    wait_for(lambda: server.finished("a1"), what="finished after the restart")
    again.stop()
    assert server.finished("a1")[0]["exit_code"] == 0
    assert restarted.agent_id == agent.agent_id


def test_a_restart_after_the_study_exited_only_uploads_and_finishes(
    tmp_path: Path, harnesses: list[Harness]
) -> None:
    server = ScriptedServer([assignment()])
    marker = tmp_path / "ran"
    harness = Harness(tmp_path, server, study_script(tmp_path, f"open({str(marker)!r}, 'w')"))
    harnesses.append(harness)
    run_dir = harness.work_dir / "runs" / "campaign_1_assignment_0_a1"
    folder = run_dir / "results" / "far_field" / "ella" / "700MHz" / "case"
    folder.mkdir(parents=True)
    (folder / "sar_results.json").write_text("{}")
    RunState("a1", 1, phase="exited", exit_code=0).save(run_dir / STATE_FILE)

    harness.start()
    wait_for(lambda: server.finished("a1"), what="finished")
    harness.stop()

    assert not marker.exists()
    assert server.uploads == [("a1", "far_field/ella/700MHz/case", ["sar_results.json"])]
    assert server.finished("a1")[0]["exit_code"] == 0


def test_an_assignment_that_comes_back_stopped_is_reported_stopped(
    tmp_path: Path, harnesses: list[Harness]
) -> None:
    server = ScriptedServer([assignment(stopRequested=True)])
    harness = Harness(tmp_path, server, study_script(tmp_path, "raise SystemExit('must not run')"))
    harnesses.append(harness)
    harness.start()
    finished = wait_for(lambda: server.finished("a1"), what="finished")
    harness.stop()
    assert finished == [{"type": "finished", "message": STOPPED_TEXT, "exit_code": 1}]


def test_a_command_that_cannot_start_fails_the_assignment(tmp_path: Path, harnesses: list[Harness]) -> None:
    server = ScriptedServer([assignment()])
    harness = Harness(tmp_path, server, "no-such-goliat-binary study {config}")
    harnesses.append(harness)
    harness.start()
    finished = wait_for(lambda: server.finished("a1"), what="finished")
    harness.stop()
    assert finished[0]["exit_code"] == 127
    assert any("Cannot start the study" in line for line in server.lines("a1"))


# -- helpers -------------------------------------------------------------------------------------


def test_build_command_fills_placeholders_and_appends_the_config(tmp_path: Path) -> None:
    config, run_dir = tmp_path / "a b.json", tmp_path / "run"
    argv = build_command(f'"{sys.executable}" -m x {{config}} --out {{run_dir}}', config, run_dir)
    assert argv == [sys.executable, "-m", "x", str(config), "--out", str(run_dir)]
    assert build_command("goliat-nonexistent study", config, run_dir) == [
        "goliat-nonexistent",
        "study",
        str(config),
    ]
    with pytest.raises(ValueError):
        build_command("   ", config, run_dir)


def test_names_and_parent_paths_stay_inside_the_work_dir(tmp_path: Path) -> None:
    assert safe_name("far field: run 2/3") == "far_field_run_2_3"
    assert safe_name("../..") == "study"
    assert _parent_path(tmp_path, "base_config.json") == tmp_path / "base_config.json"
    assert _parent_path(tmp_path, "configs/base.json") == tmp_path / "configs" / "base.json"
    assert _parent_path(tmp_path, "../../etc/passwd") == tmp_path / "passwd"
    assert _parent_path(tmp_path, "C:\\configs\\base.json").is_relative_to(tmp_path)


def test_phases_follow_the_merged_config() -> None:
    assert enabled_phases(assignment()) == ("run", "extract")
    assert enabled_phases({"splitConfig": {"extends": "missing.json"}}) == ("setup", "run", "extract")


def test_result_folders_are_relative_with_forward_slashes(tmp_path: Path) -> None:
    for folder in ("far_field/a/700MHz/x", "far_field/a/700MHz/y"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "f.json").write_text("{}")
    (tmp_path / "far_field" / "empty").mkdir()
    assert [rel for _, rel in _result_folders(tmp_path)] == ["far_field/a/700MHz/x", "far_field/a/700MHz/y"]
    assert list(_result_folders(tmp_path / "missing")) == []


EXTRACTING_STUDY = """
    import json, pathlib, time
    def folder(name, extracted):
        path = pathlib.Path("results/far_field/ella/700MHz") / name
        path.mkdir(parents=True)
        (path / "sar_results.json").write_text('{"whole_body_sar": 1e-05}')
        (path / "config.json").write_text(json.dumps({"run_done": True, "extract_done": extracted}))
    folder("environmental_x_pos_theta", True)
    print("Simulation 1 extracted", flush=True)
    deadline = time.monotonic() + 30
    while not pathlib.Path("go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    folder("environmental_x_pos_phi", False)
"""


def test_each_extracted_folder_is_uploaded_while_the_study_runs(
    tmp_path: Path, harnesses: list[Harness]
) -> None:
    """As GOLIAT does: the campaign's table fills in simulation by simulation, not per assignment."""
    server = ScriptedServer([assignment()])
    harness = Harness(tmp_path, server, study_script(tmp_path, EXTRACTING_STUDY))
    harnesses.append(harness)
    harness.start()
    first = ("a1", "far_field/ella/700MHz/environmental_x_pos_theta", ["config.json", "sar_results.json"])
    wait_for(lambda: server.uploads == [first], what="the first folder, uploaded while the study runs")
    assert not server.finished("a1")
    run_dir = next((harness.work_dir / "runs").iterdir())
    (run_dir / "go").write_text("")
    wait_for(lambda: server.finished("a1"), what="finished")
    harness.stop()
    second = ("a1", "far_field/ella/700MHz/environmental_x_pos_phi", ["config.json", "sar_results.json"])
    assert server.uploads == [first, second]  # the unchanged first folder is not sent again
