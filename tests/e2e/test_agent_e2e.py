"""Agents against a real server, all real processes over real HTTP, running `simulate-study`.

A super study completes; a server outage of 20 s loses no log line; a SIGKILLed agent delivers
its spool after a restart; failures carry their exit code, and out of memory (42) is retried.
The server keeps its data in a temp dir and is restarted on the same port for the outage.
"""

from __future__ import annotations

import json
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import psutil
import pytest

from goliat_monitor.agent.goliat_output import GoliatOutputParser
from goliat_monitor.agent.runner import AGENT_PREFIX
from goliat_monitor.config_files import read_config
from goliat_monitor.domain.splitting import split_config
from tests.conftest import TEST_CONFIGS
from tests.support import free_port, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

PYTHON = sys.executable


class Server:
    """`goliat-monitor serve` in a subprocess; stop() and start() keep the port and the data."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def start(self) -> None:
        argv = [PYTHON, "-m", "goliat_monitor", "serve", "--port", str(self.port)]
        argv += ["--data-dir", str(self.data_dir), "--log-level", "warning"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

        def up() -> bool:
            try:
                return httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 30, "the server to answer", every=0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params)
        response.raise_for_status()
        return response.json()


class AgentProcess:
    """`goliat-monitor agent` in a subprocess, with its own work dir and machine id."""

    def __init__(self, server: Server, work_dir: Path, machine_id: str, study_args: str) -> None:
        self.server = server
        self.work_dir = work_dir
        self.machine_id = machine_id
        self.command = (
            shlex.join([PYTHON, "-m", "goliat_monitor", "simulate-study"]) + " {config} " + study_args
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.log = work_dir.parent / f"{work_dir.name}.log"

    def start(self) -> None:
        argv = [PYTHON, "-m", "goliat_monitor", "agent", "--server", self.server.url]
        argv += ["--work-dir", str(self.work_dir), "--machine-id", self.machine_id]
        argv += ["--command", self.command, "--plain"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def interrupt(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(30)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    @property
    def spool(self) -> Path:
        return self.work_dir / "spool.sqlite3"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path / "server", tmp_path / "server.log")
    server.start()
    yield server
    server.stop()
    server.client.close()


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def make(server: Server, study_args: str, name: str = "agent-1") -> AgentProcess:
        agent = AgentProcess(server, tmp_path / name, f"198.51.100.{len(started) + 10}", study_args)
        agent.start()
        started.append(agent)
        return agent

    yield make
    for agent in started:
        if agent.process is not None and agent.process.poll() is None:
            agent.process.send_signal(signal.SIGINT)
            try:
                agent.process.wait(20)
            except subprocess.TimeoutExpired:
                agent.kill()
        for study in [*psutil.process_iter(["cmdline"])]:  # studies this test's agents started
            cmdline = " ".join(study.info.get("cmdline") or [])
            if "simulate-study" in cmdline and str(agent.work_dir) in cmdline:
                study.kill()


def campaign(phantoms: list[str], frequencies: list[int], directions: list[str]) -> dict[str, Any]:
    config, _parents = read_config(TEST_CONFIGS, "far_field_config.json")
    config["phantoms"] = phantoms
    config["frequencies_mhz"] = frequencies
    config["far_field_setup"]["environmental"]["incident_directions"] = directions
    config["far_field_setup"]["environmental"]["polarizations"] = ["theta"]
    return config


def create_study(
    server: Server, config: dict[str, Any], splits: int, name: str = "campaign", **extra: Any
) -> dict[str, Any]:
    _config, parents = read_config(TEST_CONFIGS, "far_field_config.json")
    result = split_config(config, "auto", num_splits=splits, parents=parents)
    body = {
        "name": name,
        "baseConfig": config,
        "parentConfigs": parents,
        "assignments": [
            {"splitConfig": a.config, "status": "PENDING", "size": a.size} for a in result.assignments
        ],
        **extra,
    }
    response = server.client.post("/api/super-studies", json=body)
    assert response.status_code == 200, response.text
    return cast(dict[str, Any], response.json())


def study_state(server: Server, study_id: str) -> dict[str, Any]:
    return cast(dict[str, Any], server.get(f"/api/super-studies/{study_id}"))


def done(server: Server, study_id: str) -> dict[str, Any] | None:
    study = study_state(server, study_id)
    return study if study["status"] in ("COMPLETED", "FAILED", "CANCELLED") else None


def server_lines(server: Server, machine_id: str) -> list[str]:
    """Every log line the server holds for a machine, in the server's order, all sessions."""
    sessions = [w for w in server.get("/api/workers", includeStale="true") if w["machineId"] == machine_id]
    lines: list[str] = []
    for worker in sorted(sessions, key=lambda w: w["createdAt"]):
        pages: list[list[str]] = []
        before = None
        while True:
            params = {"limit": 2000, **({"before": before} if before else {})}
            page = server.get(f"/api/workers/{worker['id']}/logs", **params)
            pages.append([line["message"] for line in page["logs"]])
            before = page.get("nextBefore")
            if not before:
                break
        for page_lines in reversed(pages):  # newest page first, each page oldest first
            lines.extend(page_lines)
    return lines


def expected_lines(console_log: Path) -> list[str]:
    """The progress-level lines the agent's parser makes of the study's raw console output."""
    return _parse(console_log.read_text(encoding="utf-8", errors="replace").splitlines())


def run_dir(agent: AgentProcess) -> Path:
    (found,) = list((agent.work_dir / "runs").iterdir())
    return found


# -- the tests -----------------------------------------------------------------------------------


def test_agents_complete_a_super_study(server: Server, agents: Callable[..., AgentProcess]) -> None:
    config = campaign(["thelonious", "eartha"], [700, 2450], ["x_pos"])
    study = create_study(server, config, splits=4)
    assert study["totalAssignments"] == 4
    first = agents(server, "--speed 20")
    second = agents(server, "--speed 20", name="agent-2")

    final = wait_for(lambda: done(server, study["id"]), 90, "the study to finish")

    assert final["status"] == "COMPLETED"
    assert [a["status"] for a in final["assignments"]] == ["COMPLETED"] * 4
    completions = [e for e in final["events"] if e["to"] == "COMPLETED"]
    assert sorted(e["index"] for e in completions) == [0, 1, 2, 3]  # each exactly once
    assert all(a["attempts"] == 1 for a in server.get(f"/api/super-studies/{study['id']}/assignments"))
    listing = server.get(f"/api/super-studies/{study['id']}/results/list")
    paths = set()

    def walk(nodes: list[dict[str, Any]]) -> None:
        for node in nodes:
            if node["type"] == "file":
                paths.add(node["path"])
            walk(node.get("children") or [])

    walk(listing["tree"])
    for phantom in ("thelonious", "eartha"):
        for frequency in (700, 2450):
            case = f"far_field/{phantom}/{frequency}MHz/environmental_x_pos_theta"
            assert f"{case}/sar_results.json" in paths
            assert f"{case}/sar_stats_all_tissues.pkl" in paths
            assert f"{case}/verbose.log" in paths
    assert not any(path.endswith((".h5", ".smash")) for path in paths)
    assert first.interrupt() == 0 and second.interrupt() == 0


def test_a_server_outage_loses_no_log_line(
    server: Server, agents: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    config = campaign(["thelonious"], [700, 2450], ["x_pos", "x_neg", "y_pos", "y_neg"])
    study = create_study(server, config, splits=1)
    agent = agents(server, "--speed 1.2")  # eight simulations, ~27 s: it goes on after the restart
    wait_for(lambda: len(server_lines(server, agent.machine_id)) > 5, 30, "the first log lines")

    server.stop()
    time.sleep(20)
    assert agent.process is not None and agent.process.poll() is None
    waiting = sqlite3.connect(f"file:{agent.spool}?mode=ro", uri=True)
    assert waiting.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] > 0  # it spooled meanwhile
    waiting.close()
    server.start()

    final = wait_for(lambda: done(server, study["id"]), 60, "the study to finish")
    assert final["status"] == "COMPLETED"
    wait_for(lambda: agent.spool.exists() and _depth(agent.spool) == 0, 20, "the spool to drain")
    got = [line for line in server_lines(server, agent.machine_id) if not line.startswith(AGENT_PREFIX)]
    want = expected_lines(run_dir(agent) / "agent-console.log")
    assert len(want) > 100
    assert got == want  # every line, in order, exactly once
    assert agent.interrupt() == 0


def _depth(spool: Path) -> int:
    with sqlite3.connect(f"file:{spool}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


def _spooled_lines(spool: Path) -> list[str]:
    with sqlite3.connect(f"file:{spool}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT payload FROM outbox ORDER BY id").fetchall()
    lines: list[str] = []
    for (payload,) in rows:
        message = json.loads(payload)["message"]
        if message["type"] == "log_batch":
            lines.extend(entry["message"] for entry in message["logs"])
    return lines


def test_a_sigkilled_agent_delivers_its_spool_after_a_restart(
    server: Server, agents: Callable[..., AgentProcess]
) -> None:
    config = campaign(["thelonious"], [700], ["x_pos", "y_pos", "z_pos"])
    study = create_study(server, config, splits=1)
    agent = agents(server, "--speed 2")
    wait_for(lambda: len(server_lines(server, agent.machine_id)) > 3, 30, "the first log lines")
    delivered = [line for line in server_lines(server, agent.machine_id) if not line.startswith(AGENT_PREFIX)]

    server.stop()  # so that the agent has something in its spool when it dies
    wait_for(lambda: len(_spooled_lines(agent.spool)) >= 10, 20, "log lines to be spooled", every=0.1)
    assert agent.process is not None
    orphans = psutil.Process(agent.process.pid).children()
    assert orphans  # the study is still running: killing the agent leaves it behind
    agent.kill()
    spooled = [line for line in _spooled_lines(agent.spool) if not line.startswith(AGENT_PREFIX)]
    assert spooled

    server.start()
    agent.start()  # same work dir: same agent id, same spool; the assignment runs again
    final = wait_for(lambda: done(server, study["id"]), 60, "the study to finish")

    assert final["status"] == "COMPLETED"
    assert [e["to"] for e in final["events"]].count("COMPLETED") == 1
    # The server holds the killed run's lines, then the rerun's (its sequence restarts at 0).
    raw = (run_dir(agent) / "agent-console.log").read_text(encoding="utf-8", errors="replace")
    starts = [i for i, line in enumerate(raw.splitlines()) if "GUI not available" in line]
    assert len(starts) == 2
    first, second = _parse(raw.splitlines()[: starts[1]]), _parse(raw.splitlines()[starts[1] :])
    got = [line for line in server_lines(server, agent.machine_id) if not line.startswith(AGENT_PREFIX)]
    cut = len(got) - len(second)
    assert got[cut:] == second
    assert got[:cut] == first[:cut]  # the killed run: in order, nothing twice...
    assert cut >= len(delivered) + len(spooled)  # ...and everything it had spooled arrived
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in orphans)
    assert agent.interrupt() == 0


def _parse(raw_lines: list[str]) -> list[str]:
    parser = GoliatOutputParser()
    return [m["message"] for line in raw_lines for m in parser.feed(line, 0.0) if m["type"] == "status"]


def test_a_failing_study_fails_its_assignment_with_the_exit_code(
    server: Server, agents: Callable[..., AgentProcess]
) -> None:
    study = create_study(server, campaign(["ella"], [700], ["x_pos"]), splits=1, maxAttempts=3)
    agent = agents(server, "--speed 20 --fail-at run")
    final = wait_for(lambda: done(server, study["id"]), 60, "the study to finish")
    (piece,) = server.get(f"/api/super-studies/{study['id']}/assignments")
    assert final["status"] == "FAILED"
    assert piece["status"] == "FAILED"
    assert piece["exitCode"] == 1
    assert piece["attempts"] == 1  # a plain failure is not retried
    assert piece["errorMessage"] == "Study finished with errors"
    assert agent.interrupt() == 0


def test_out_of_memory_is_retried_by_the_server(server: Server, agents: Callable[..., AgentProcess]) -> None:
    study = create_study(server, campaign(["ella"], [700], ["x_pos"]), splits=1, maxAttempts=2)
    agent = agents(server, "--speed 20 --exit-code 42")
    final = wait_for(lambda: done(server, study["id"]), 60, "the study to finish")
    (piece,) = server.get(f"/api/super-studies/{study['id']}/assignments")
    assert piece["status"] == "FAILED"
    assert piece["exitCode"] == 42
    assert piece["attempts"] == 2
    transitions = [(e["from"], e["to"]) for e in final["events"]]
    assert transitions == [
        ("PENDING", "RUNNING"),
        ("RUNNING", "PENDING"),  # retried
        ("PENDING", "RUNNING"),
        ("RUNNING", "FAILED"),
    ]
    assert agent.interrupt() == 0
