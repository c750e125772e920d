"""`goliat-monitor demo`: a server, a real GOLIAT campaign and N agents, on this machine.

The campaign is GOLIAT's own far-field config (bundled, trimmed to 48 simulations), split with
the same code the server uses for uploaded configs; the agents run `simulate-study`, which prints
what `goliat study` prints and writes the same result files, so everything between the agent and
the dashboard is the real thing. Agents run as separate processes, in process groups of their
own: Ctrl-C reaches only the demo, which stops the agents first (they report it to the server
still running) and then the server.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import IO, Any

import httpx
import uvicorn

from goliat_monitor.agent.runner import kill_process_tree
from goliat_monitor.config_files import read_config
from goliat_monitor.domain.splitting import split_config

__all__ = ["DemoCampaign", "load_demo_campaign", "run_demo"]

CONFIG_NAME = "far_field_config.json"
DEFAULT_SPLITS = 8


@dataclass(frozen=True)
class DemoCampaign:
    config: dict[str, Any]
    parents: dict[str, dict[str, Any]]


def load_demo_campaign() -> DemoCampaign:
    """The bundled GOLIAT configs (package data, so it works from a wheel too)."""
    config, parents = read_config(resources.files("goliat_monitor.demo") / "configs", CONFIG_NAME)
    return DemoCampaign(config, parents)


def study_body(name: str, campaign: DemoCampaign, num_splits: int = DEFAULT_SPLITS) -> dict[str, Any]:
    """The `POST /api/super-studies` body GOLIAT's `super_study` would send, plus our extras."""
    result = split_config(campaign.config, "auto", num_splits=num_splits, parents=campaign.parents)
    return {
        "name": name,
        "description": f"goliat-monitor demo: GOLIAT's far-field campaign, {result.plan}",
        "baseConfig": campaign.config,
        "parentConfigs": campaign.parents,
        "splitStrategy": "auto",
        "assignments": [
            {"splitConfig": a.config, "status": "PENDING", **({"size": a.size} if a.size else {})}
            for a in result.assignments
        ],
    }


class _QuietServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the demo owns Ctrl-C
        pass


def _command_line(argv: list[str]) -> str:
    return subprocess.list2cmdline(argv) if os.name == "nt" else shlex.join(argv)


@dataclass
class _AgentProcess:
    index: int
    machine_id: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    log_path: Path = field(default_factory=Path)

    def stop(self) -> None:
        """Ask the agent to stop cleanly, as Ctrl-C would."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(OSError):
            if sys.platform == "win32":
                self.process.send_signal(signal.CTRL_BREAK_EVENT)
            else:
                self.process.send_signal(signal.SIGINT)


def _start_agent(index: int, url: str, data_dir: Path, speed: float) -> _AgentProcess:
    python = sys.executable
    study = _command_line(
        [python, "-m", "goliat_monitor", "simulate-study", "{config}", "--speed", str(speed)]
    )
    study += f" --seed {index}"
    machine_id = f"192.0.2.{11 + index}"  # TEST-NET-1: shows as a public IP, like GOLIAT's ids
    work_dir = data_dir / "agents" / f"agent-{index + 1}"
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "agents" / f"agent-{index + 1}.log"
    log = log_path.open("ab")
    argv = [
        python,
        "-m",
        "goliat_monitor",
        "agent",
        "--server",
        url,
        "--work-dir",
        str(work_dir),
        "--machine-id",
        machine_id,
        "--command",
        study,
        "--plain",
    ]
    kwargs: dict[str, Any] = {}
    if sys.platform == "win32":
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        kwargs["start_new_session"] = True
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, **kwargs
    )
    return _AgentProcess(index, machine_id, process, log, log_path)


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if os.name != "nt":  # on Windows SO_REUSEADDR lets two servers share a port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(
            f"error: cannot listen on {host}:{port} ({exc}); try --port 0 for a free port"
        ) from None
    return sock


def _summary(client: httpx.Client, study_id: str) -> tuple[str, dict[str, Any]]:
    study = client.get(f"/api/super-studies/{study_id}").json()
    workers = client.get("/api/workers").json()
    counts: dict[str, int] = {}
    for assignment in study.get("assignments", []):
        counts[assignment["status"]] = counts.get(assignment["status"], 0) + 1
    online = sum(1 for w in workers if w.get("status") not in ("OFFLINE",))
    parts = [
        f"{study.get('status', '?')}: {study.get('completedAssignments', 0)}/{study.get('totalAssignments')} done"
    ]
    parts += [f"{counts[s]} {s.lower()}" for s in ("RUNNING", "PENDING", "FAILED") if counts.get(s)]
    parts.append(f"{float(study.get('masterProgress') or 0):.0f} %")
    parts.append(f"{online} worker(s) online")
    return " | ".join(parts), study


def run_demo(
    *,
    workers: int = 4,
    port: int = 8000,
    speed: float = 1.0,
    host: str = "127.0.0.1",
    data_dir: Path | None = None,
    num_splits: int = DEFAULT_SPLITS,
    echo: Any = print,
) -> int:
    """Run the demo until Ctrl-C; returns the exit code."""
    from goliat_monitor.server.app import create_app
    from goliat_monitor.settings import ServerSettings

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not the main thread (tests): Ctrl-C only
        signal.signal(signal.SIGTERM, terminate)
        # Also when started with SIGINT ignored (a background job of a script): Ctrl-C must work.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    sock = _listen(host, port)  # first: a busy port is reported before anything is created
    port = sock.getsockname()[1]
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
    temporary = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="goliat-monitor-demo-")) if data_dir is None else data_dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    settings = ServerSettings(host=host, port=port, data_dir=root / "server")
    server = _QuietServer(
        uvicorn.Config(create_app(settings), log_level="warning", lifespan="on", proxy_headers=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="demo-server", daemon=True)
    thread.start()
    agents: list[_AgentProcess] = []
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                echo("error: the server did not start")
                return 1
            time.sleep(0.05)
        with httpx.Client(base_url=url, timeout=30) as client:
            name = f"demo far field {datetime.now():%Y-%m-%d %H:%M:%S}"
            body = study_body(name, load_demo_campaign(), num_splits)
            response = client.post("/api/super-studies", json=body)
            response.raise_for_status()
            study = response.json()
            simulations = sum(a.get("size") or 0 for a in body["assignments"])
            echo(f"goliat-monitor demo: dashboard at {url}/")
            echo(
                f"  super study {study['name']!r}: {study['totalAssignments']} assignments, {simulations} simulations"
            )
            echo(f"  {workers} agent(s) running simulate-study at speed {speed}; logs in {root / 'agents'}")
            echo(f"  data in {root}{' (removed at exit)' if temporary else ''}. Press Ctrl-C to stop.")
            agents = [_start_agent(i, url, root, speed) for i in range(workers)]
            _watch(client, study["id"], agents, url, echo)
    except KeyboardInterrupt:
        echo("\nstopping: agents first, then the server...")
    finally:
        _stop_agents(agents, echo)
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
    echo("demo stopped")
    return 0


def _watch(client: httpx.Client, study_id: str, agents: list[_AgentProcess], url: str, echo: Any) -> None:
    """Print a line whenever the campaign's state changes; returns only on Ctrl-C."""
    last = ""
    announced = False
    gone: set[int] = set()
    while True:
        time.sleep(2.0)
        for agent in agents:
            code = agent.process.poll()
            if code is not None and agent.index not in gone:
                gone.add(agent.index)
                echo(f"  agent {agent.index + 1} exited with code {code}; see {agent.log_path}")
        try:
            line, study = _summary(client, study_id)
        except (httpx.HTTPError, ValueError):
            continue
        if line != last:
            echo(f"  {datetime.now():%H:%M:%S}  {line}")
            last = line
        if not announced and study.get("status") in ("COMPLETED", "FAILED"):
            announced = True
            files = client.get(f"/api/super-studies/{study_id}/results/list").json()
            table = client.get(f"/api/super-studies/{study_id}/results/table").json()
            echo(
                f"  campaign {study['status'].lower()}: {files.get('totalFiles', 0)} result files, "
                f"{len(table.get('rows', []))} simulations in the results table at "
                f"{url}/super-studies/{study_id}, zip at {url}/api/super-studies/{study_id}/results/download. "
                "Ctrl-C to stop."
            )


def _stop_agents(agents: list[_AgentProcess], echo: Any) -> None:
    for agent in agents:
        agent.stop()
    deadline = time.monotonic() + 20
    for agent in agents:
        try:
            agent.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            echo(f"  agent {agent.index + 1} did not stop in time: killing it and its study")
            kill_process_tree(agent.process.pid)
            agent.process.wait()
        finally:
            agent.log.close()
