"""A super study survives a dead worker and can be cancelled under running agents.

Real processes over real HTTP: a server, `goliat-monitor agent`s, and `simulate-study` as the
study command.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import psutil
import pytest

from tests.conftest import TEST_CONFIGS
from tests.support import free_port, spawn_goliat_monitor, stop_group, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    process = spawn_goliat_monitor(
        [
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "server"),
            "--lease-timeout-s",
            "4",
            "--offline-after-s",
            "3",
        ],
        tmp_path / "server.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(url), 30, "the server")
        yield url
    finally:
        stop_group(process, signal.SIGTERM)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def write_campaign(folder: Path, frequencies: list[int]) -> Path:
    """The far-field test config, narrowed to one simulation per frequency, its parent beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    config = json.loads((TEST_CONFIGS / "far_field_config.json").read_text())
    config["phantoms"] = ["thelonious"]
    config["frequencies_mhz"] = frequencies
    config["far_field_setup"]["environmental"]["incident_directions"] = ["x_pos"]
    config["far_field_setup"]["environmental"]["polarizations"] = ["theta"]
    (folder / "base_config.json").write_text((TEST_CONFIGS / "base_config.json").read_text())
    path = folder / "campaign.json"
    path.write_text(json.dumps(config))
    return path


def create_study(url: str, config: Path, name: str) -> dict[str, Any]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "goliat_monitor",
            "super-study",
            "create",
            str(config),
            "--name",
            name,
            "--split-by",
            "frequency",
            "--server",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return cast(dict[str, Any], httpx.get(f"{url}/api/super-studies", params={"name": name}).json()[0])


def start_agent(url: str, tmp_path: Path, index: int, speed: float) -> subprocess.Popen[bytes]:
    command = f"{shlex.quote(sys.executable)} -m goliat_monitor simulate-study {{config}} --speed {speed}"
    return spawn_goliat_monitor(
        [
            "agent",
            "--server",
            url,
            "--work-dir",
            str(tmp_path / f"agent{index}"),
            "--machine-id",
            f"10.9.0.{index}",
            "--command",
            command,
            "--plain",
        ],
        tmp_path / f"agent{index}.log",
    )


def study_detail(url: str, study_id: str) -> dict[str, Any]:
    return cast(dict[str, Any], httpx.get(f"{url}/api/super-studies/{study_id}", timeout=10).json())


def test_study_completes_when_one_of_three_agents_dies(server: str, tmp_path: Path) -> None:
    config = write_campaign(tmp_path / "configs", [450, 700, 835, 1450, 2140, 2450])
    study = create_study(server, config, "survivor")
    agents = [start_agent(server, tmp_path, index, speed=1.5) for index in range(3)]
    try:

        def victim_running() -> dict[str, Any] | None:
            assignments: list[dict[str, Any]] = study_detail(server, study["id"])["assignments"]
            for a in assignments:
                if a["status"] == "RUNNING" and a["machineId"] == "10.9.0.0" and a["progress"] > 0:
                    return a
            return None

        victim = wait_for(victim_running, 60, "agent 0 to be mid-assignment")
        stop_group(agents[0], signal.SIGKILL)  # the agent and its study, like a VM that vanished
        done = wait_for(
            lambda: (d := study_detail(server, study["id"]))["status"] == "COMPLETED" and d,
            120,
            "the study to complete",
        )
    finally:
        for process in agents[1:]:
            stop_group(process, signal.SIGTERM)
    assert [a["status"] for a in done["assignments"]] == ["COMPLETED"] * 6
    completions = Counter(e["assignmentId"] for e in done["events"] if e["to"] == "COMPLETED")
    assert completions == Counter({a["id"]: 1 for a in done["assignments"]})
    victim_events = [(e["from"], e["to"]) for e in done["events"] if e["assignmentId"] == victim["id"]]
    assert ("RUNNING", "PENDING") in victim_events  # its lease lapsed and it was handed on
    finisher = next(a for a in done["assignments"] if a["id"] == victim["id"])
    assert finisher["machineId"] != "10.9.0.0" and finisher["attempts"] == 2
    listing = httpx.get(f"{server}/api/super-studies/{study['id']}/results/list").json()
    assert listing["totalFiles"] > 0


def test_cancel_reaches_a_running_agent(server: str, tmp_path: Path) -> None:
    config = write_campaign(tmp_path / "configs", [450, 700])
    study = create_study(server, config, "to-cancel")
    agent = start_agent(server, tmp_path, 5, speed=0.05)  # one simulation takes over a minute
    try:
        wait_for(
            lambda: any(a["status"] == "RUNNING" for a in study_detail(server, study["id"])["assignments"]),
            60,
            "the agent to start an assignment",
        )

        def studies() -> list[psutil.Process]:
            children = psutil.Process(agent.pid).children(recursive=True)
            return [p for p in children if "simulate-study" in " ".join(p.cmdline())]

        wait_for(studies, 30, "the study process")
        assert httpx.post(f"{server}/api/super-studies/{study['id']}/cancel").status_code == 200
        final = wait_for(
            lambda: (d := study_detail(server, study["id"]))["status"] == "CANCELLED" and d,
            60,
            "the cancellation",
        )
        assert [a["status"] for a in final["assignments"]] == ["CANCELLED", "CANCELLED"]
        wait_for(lambda: not studies(), 30, "the study process to stop")
        assert agent.poll() is None  # the agent itself keeps running, ready for other work
    finally:
        stop_group(agent, signal.SIGTERM)
