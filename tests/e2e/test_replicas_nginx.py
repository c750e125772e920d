"""Three replicas behind a real nginx, one of them SIGKILLed under load.

Everything is a real process over real HTTP: three `goliat-monitor serve` replicas on one scratch
PostgreSQL database (started together on it while it is still empty), nginx with the example
config of `docs/deploy.md`, `goliat-monitor agent`s running a simulated super study, GOLIAT
bridges with spools, and a page following `/api/events`, all through nginx. Once everything is
busy, the replica serving the page's event stream is killed.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from goliat_monitor.agent.runner import AGENT_PREFIX
from goliat_monitor.bridge import WebGUIBridge
from goliat_monitor.config_files import read_config
from goliat_monitor.domain.splitting import split_config
from tests.conftest import TEST_CONFIGS
from tests.e2e.test_agent_e2e import campaign, expected_lines
from tests.support import free_port, spawn_goliat_monitor, stop_group, wait_for
from tests.web.sse import SseEvent, SseReader

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals, Debian's nginx"),
]

DEPLOY_DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
REPLICAS = 3
BRIDGES = 3
LINES_PER_S = 40  # per bridge, with progress messages in between
BROWSER_RETRY_S = 2.0  # the `retry:` the server asks EventSource for


def nginx_binary() -> str:
    """Debian's nginx; missing, the test fails on CI (scripts/test installs it) and skips elsewhere."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        message = "nginx is not installed (Debian: apt-get install nginx; scripts/test installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


# -- the processes --------------------------------------------------------------------------------


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Replica:
    url: str
    process: subprocess.Popen[bytes]
    epoch: str = ""
    """The id prefix of this replica's event streams: which replica a stream comes from."""


def up_or_exited(replica: Replica) -> bool:
    return healthy(replica.url) or replica.process.poll() is not None


@pytest.fixture
def replicas(empty_pg_url: str, tmp_path: Path) -> Iterator[list[Replica]]:
    """Started at the same moment on the empty database, sharing one data dir (the artifacts)."""
    started: list[Replica] = []
    logs = [tmp_path / f"replica{index}.log" for index in range(REPLICAS)]
    for log in logs:
        port = free_port()
        argv = ["serve", "--port", str(port), "--database-url", empty_pg_url]
        argv += ["--data-dir", str(tmp_path / "shared-data"), "--lease-timeout-s", "20"]
        argv += ["--offline-after-s", "10", "--log-level", "warning"]
        started.append(Replica(f"http://127.0.0.1:{port}", spawn_goliat_monitor(argv, log)))
    try:
        for replica, log in zip(started, logs, strict=True):
            wait_for(functools.partial(up_or_exited, replica), 60, "a replica")
            assert replica.process.poll() is None, log.read_text()
            with SseReader(replica.url) as stream:
                hello = stream.until(lambda event: event.event == "hello")[-1]
            assert hello.id is not None
            replica.epoch = hello.id.partition(":")[0]
        yield started
    finally:
        for replica in started:
            stop_group(replica.process, signal.SIGTERM)


def nginx_config(prefix: Path, port: int, upstreams: list[str]) -> str:
    """The example of docs/deploy.md with this test's addresses, inside a config of its own."""
    (example,) = re.findall(r"```nginx\n(.*?)```", DEPLOY_DOC.read_text(), re.S)
    servers = "".join(f"    server {address}\\1;\n" for address in upstreams)
    example, replaced = re.subn(
        r"^    server [\d.]+:\d+(.*);\n(?:    server .*\n)*", servers, example, count=1, flags=re.M
    )
    assert replaced == 1, "the upstream block of docs/deploy.md changed shape"
    example, replaced = re.subn(
        r"^    listen \d+;$", f"    listen 127.0.0.1:{port};", example, count=1, flags=re.M
    )
    assert replaced == 1, "the listen line of docs/deploy.md changed shape"
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = "\n".join(f"    {kind}_temp_path {prefix / kind};" for kind in kinds)
    return f"""
# One process of the test's own user: no privilege switch, no system paths, no port 80.
master_process off;
error_log {prefix / "error.log"} notice;
pid {prefix / "nginx.pid"};
events {{ worker_connections 1024; }}
http {{
    access_log {prefix / "access.log"};
{temp}
{example}
}}
"""


@dataclass
class Balancer:
    url: str
    access_log: Path


@pytest.fixture
def balancer(replicas: list[Replica], tmp_path: Path) -> Iterator[Balancer]:
    binary = nginx_binary()
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_config(prefix, port, [r.url.removeprefix("http://") for r in replicas]))
    argv = [binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf), "-g", "daemon off;"]
    with (prefix / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(argv, stderr=stderr, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: healthy(url) or process.poll() is not None, 20, "nginx")
        assert process.poll() is None, (prefix / "stderr.log").read_text()
        yield Balancer(url, prefix / "access.log")
    finally:
        stop_group(process, signal.SIGQUIT)


# -- the clients ----------------------------------------------------------------------------------


class Feeder:
    """A GOLIAT run talking through a spooled WebGUIBridge: steady log lines and progress."""

    def __init__(self, url: str, machine_id: str, spool: Path) -> None:
        self.machine_id = machine_id
        self.bridge = WebGUIBridge(url, machine_id, spool_path=str(spool), retry_cap=2.0)
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"feeder-{machine_id}", daemon=True)

    def start(self) -> None:
        self.bridge.start()
        self._thread.start()

    def _run(self) -> None:
        for count in itertools.count():
            if self._stop.wait(1 / LINES_PER_S):
                return
            line = f"{self.machine_id} line {count:05d}"
            self.lines.append(line)
            self.bridge.enqueue({"type": "status", "message": line, "log_type": "info"})
            self.bridge.enqueue({"type": "overall_progress", "current": count % 100, "total": 100})

    def finish(self) -> None:
        """Stop feeding, then wait until the spool has delivered every line."""
        self._stop.set()
        self._thread.join(5)
        wait_for(lambda: self.bridge.pending == 0, 30, f"{self.machine_id}'s spool to drain", every=0.1)
        self.bridge.stop(timeout=10)


@dataclass
class Stream:
    """One connection of the page's event stream."""

    sent_last_event_id: str | None
    events: list[SseEvent] = field(default_factory=list)

    @property
    def epoch(self) -> str | None:
        hello = next((e for e in self.events if e.event == "hello" and e.id), None)
        return hello.id.partition(":")[0] if hello is not None and hello.id else None


class Page:
    """A browser page on the worker and study pages, through the balancer, as EventSource does it.

    It loads the followed workers' logs, then keeps them up to date from `logs` events; a lost
    stream is reopened with `Last-Event-ID`; `resync` makes it load its data again.
    """

    def __init__(self, url: str, log_workers: list[str], study_id: str) -> None:
        self.url = url
        self.params = {"workers": "all", "logs": log_workers, "study": study_id}
        self.api = httpx.Client(base_url=url, timeout=10)
        self.streams: list[Stream] = []
        self.logs: dict[str, dict[str, str]] = {w: {} for w in log_workers}  # cursor -> line, in order
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="page", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.api.close()

    def lines(self, worker_id: str) -> list[str]:
        with self._lock:
            return list(self.logs[worker_id].values())

    def _run(self) -> None:
        last_id: str | None = None
        try:
            while not self._stop.is_set():
                stream = Stream(last_id)
                self.streams.append(stream)
                with (
                    contextlib.suppress(httpx.TransportError, EOFError),  # the stream broke
                    SseReader(self.url, self.params, last_event_id=last_id) as reader,
                ):
                    while not self._stop.is_set():
                        event = reader.next()
                        stream.events.append(event)
                        last_id = event.id or last_id
                        self._apply(event, stream)
                self._stop.wait(BROWSER_RETRY_S)
        except BaseException as exc:  # the test thread reports it
            self.error = exc

    def _apply(self, event: SseEvent, stream: Stream) -> None:
        if event.event == "resync" or (event.event == "hello" and stream.sent_last_event_id is None):
            self._load()
        elif event.event == "logs":
            with self._lock:
                known = self.logs[event.json["workerId"]]
                for line in event.json["lines"]:
                    known.setdefault(line["cursor"], line["message"])

    def _load(self) -> None:
        for worker_id in self.logs:
            loaded = {line["cursor"]: line["message"] for line in stored_log(self.api, worker_id)}
            with self._lock:
                self.logs[worker_id] = loaded


def stored_log(client: httpx.Client, worker_id: str) -> list[dict[str, Any]]:
    """Every log line of one worker session, oldest first, through the paged API."""
    pages: list[list[dict[str, Any]]] = []
    before = None
    while True:
        params = {"limit": 2000, **({"before": before} if before else {})}
        answer = client.get(f"/api/workers/{worker_id}/logs", params=params)
        answer.raise_for_status()
        page = answer.json()
        pages.append(page["logs"])
        before = page.get("nextBefore")
        if not before:
            return [line for lines in reversed(pages) for line in lines]


def stored_lines(client: httpx.Client, machine_id: str) -> list[str]:
    """Every line the server holds for a machine, all sessions, without the agent's own notes."""
    listed = client.get("/api/workers", params={"includeStale": "true"}).json()
    sessions = sorted((w for w in listed if w["machineId"] == machine_id), key=lambda w: w["createdAt"])
    lines = [line["message"] for worker in sessions for line in stored_log(client, worker["id"])]
    return [line for line in lines if not line.startswith(AGENT_PREFIX)]


def requests_waiting(port: int) -> int:
    """Connections to `port` holding bytes its process has not read yet (Linux's /proc/net/tcp)."""
    waiting = 0
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, _remote, state, queues = row.split()[1:5]
        established = state == "01"
        if established and int(local.rpartition(":")[2], 16) == port and int(queues.split(":")[1], 16):
            waiting += 1
    return waiting


def worker_id_of(client: httpx.Client, machine_id: str) -> str | None:
    found = [w["id"] for w in client.get("/api/workers").json() if w["machineId"] == machine_id]
    return found[0] if found else None


def create_study(client: httpx.Client, splits: int) -> dict[str, Any]:
    config = campaign(["thelonious", "eartha"], [700, 2450], ["x_pos", "y_pos"])
    _config, parents = read_config(TEST_CONFIGS, "far_field_config.json")
    pieces = split_config(config, "auto", num_splits=splits, parents=parents).assignments
    body = {
        "name": "replicas",
        "baseConfig": config,
        "parentConfigs": parents,
        "assignments": [{"splitConfig": p.config, "status": "PENDING", "size": p.size} for p in pieces],
    }
    answer = client.post("/api/super-studies", json=body)
    assert answer.status_code == 200, answer.text
    study: dict[str, Any] = answer.json()
    return study


def start_agent(url: str, work_dir: Path, machine_id: str) -> subprocess.Popen[bytes]:
    command = shlex.join([sys.executable, "-m", "goliat_monitor", "simulate-study"]) + " {config} --speed 1.5"
    argv = ["agent", "--server", url, "--work-dir", str(work_dir), "--machine-id", machine_id]
    return spawn_goliat_monitor(
        [*argv, "--command", command, "--plain"], work_dir.parent / f"{work_dir.name}.log"
    )


def run_lines(work_dir: Path) -> list[list[str]]:
    """The lines each of an agent's runs printed, as its parser made them, one list per run."""
    return [expected_lines(run / "agent-console.log") for run in sorted((work_dir / "runs").iterdir())]


def agent_delivered(client: httpx.Client, machine_id: str, work_dir: Path) -> bool:
    """The server holds every line of the agent's runs, each run's in order, once, run after run."""
    stored = stored_lines(client, machine_id)
    return any(
        stored == list(itertools.chain(*order)) for order in itertools.permutations(run_lines(work_dir))
    )


def file_paths(tree: list[dict[str, Any]]) -> list[str]:
    """The files of a results tree, at every depth."""
    paths = []
    for node in tree:
        if node["type"] == "file":
            paths.append(node["path"])
        paths.extend(file_paths(node.get("children") or []))
    return paths


def one_holder_at_a_time(events: list[dict[str, Any]]) -> bool:
    """Each assignment's history is one chain: every change starts where the one before ended."""
    by_assignment: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_assignment.setdefault(event["assignmentId"], []).append(event)
    return all(
        history[0]["from"] == "PENDING" and all(b["from"] == a["to"] for a, b in itertools.pairwise(history))
        for history in by_assignment.values()
    )


# -- the test -------------------------------------------------------------------------------------


def test_a_replica_killed_under_load_loses_nothing_and_doubles_nothing(
    replicas: list[Replica], balancer: Balancer, tmp_path: Path
) -> None:
    url = balancer.url
    client = httpx.Client(base_url=url, timeout=15)
    feeders = [Feeder(url, f"198.51.100.{30 + i}", tmp_path / f"bridge{i}.spool") for i in range(BRIDGES)]
    agents: dict[str, tuple[Path, subprocess.Popen[bytes]]] = {}
    page: Page | None = None
    try:
        study = create_study(client, splits=4)
        assert study["totalAssignments"] == 4  # more than agents: claims are contended
        for feeder in feeders:
            feeder.start()
        for index in range(2):
            machine_id = f"198.51.100.{40 + index}"
            work_dir = tmp_path / f"agent{index}"
            agents[machine_id] = (work_dir, start_agent(url, work_dir, machine_id))
        bridge_workers = {
            f.machine_id: wait_for(
                functools.partial(worker_id_of, client, f.machine_id), 30, "a bridge's worker"
            )
            for f in feeders
        }
        page = Page(url, list(bridge_workers.values()), study["id"])
        page.start()

        def busy() -> bool:
            assignments = client.get(f"/api/super-studies/{study['id']}").json()["assignments"]
            running = [a for a in assignments if a["status"] == "RUNNING" and a["progress"] > 0]
            return len(running) == 2 and all(page.lines(w) for w in bridge_workers.values())

        wait_for(busy, 60, "both agents mid-assignment and the page following the bridges", every=0.2)
        (victim,) = [r for r in replicas if r.epoch == page.streams[0].epoch]
        # It hangs first, so that requests are inside it when it dies: nginx cannot pass those
        # POSTs on (they reached a replica), and their senders must deliver them again.
        os.kill(victim.process.pid, signal.SIGSTOP)
        victim_port = int(victim.url.rsplit(":", 1)[1])
        wait_for(lambda: requests_waiting(victim_port) >= 3, 10, "requests stuck in the hung replica")
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.process.wait(10)
        lines_at_kill = {f.machine_id: len(f.lines) for f in feeders}

        final = wait_for(
            lambda: (
                (s := client.get(f"/api/super-studies/{study['id']}").json())["status"] == "COMPLETED" and s
            ),
            90,
            "the study to complete through the survivors",
            every=0.5,
        )
        for feeder in feeders:
            feeder.finish()

        # Every line each bridge produced is stored once, in order, and so is every agent run's,
        # though some of their messages were lost with the victim and had to be sent again.
        lost = re.findall(r'"POST (/api/gui-updates?) HTTP/1.1" 502 ', balancer.access_log.read_text())
        assert lost, "no message died with the replica: the test did not test redelivery"
        for feeder in feeders:
            assert len(feeder.lines) > lines_at_kill[feeder.machine_id] > 0
            assert stored_lines(client, feeder.machine_id) == feeder.lines, feeder.machine_id
            assert feeder.bridge.dropped == 0 and feeder.bridge.rejected == 0
        ran_by: dict[str, str] = {}
        for machine_id, (work_dir, _process) in agents.items():
            wait_for(functools.partial(agent_delivered, client, machine_id, work_dir), 20, "an agent's lines")
            ran_by.update({run.name.rsplit("_", 1)[1]: machine_id for run in (work_dir / "runs").iterdir()})

        # Claims: each assignment ran once, on one agent, and its history has one holder at a time.
        assert [a["status"] for a in final["assignments"]] == ["COMPLETED"] * 4
        assert [a["attempts"] for a in final["assignments"]] == [1] * 4
        assert sorted(ran_by) == sorted(a["id"][:8] for a in final["assignments"])
        assert sum(len(list((w / "runs").iterdir())) for w, _p in agents.values()) == 4
        assert one_holder_at_a_time(final["events"])

        # The uploads landed in the shared artifacts folder: every survivor serves them.
        survivors = [r for r in replicas if r is not victim]
        listing = client.get(f"/api/super-studies/{study['id']}/results/list").json()
        results = [path for path in file_paths(listing["tree"]) if path.endswith("sar_results.json")]
        assert len(results) == 8  # one per simulation
        for replica in survivors:
            for path in results:
                answer = httpx.get(
                    f"{replica.url}/api/super-studies/{study['id']}/results/file", params={"path": path}
                )
                assert answer.status_code == 200 and answer.json(), (replica.url, path)

        # The page lost its stream with the victim, reopened it through nginx on a survivor with
        # Last-Event-ID, and went on seeing every line and the study's completion.
        def caught_up(worker_id: str, lines: list[str]) -> bool:
            return page is not None and page.lines(worker_id) == lines

        for feeder in feeders:
            worker_id = bridge_workers[feeder.machine_id]
            wait_for(functools.partial(caught_up, worker_id, feeder.lines), 20, "the page to catch up")
        assert page.error is None
        resumed = [stream for stream in page.streams[1:] if stream.epoch is not None]
        assert resumed, "the page never got its stream back"
        sent = resumed[0].sent_last_event_id
        assert sent is not None and sent.startswith(victim.epoch)
        assert {stream.epoch for stream in resumed} <= {r.epoch for r in survivors}
        seen = [event for stream in resumed for event in stream.events]
        assert any(event.event == "logs" for event in seen)  # live lines kept coming
        statuses = {event.json.get("status") for event in seen if event.event == "study"}
        history = [
            (stream.sent_last_event_id, Counter(e.event for e in stream.events)) for stream in page.streams
        ]
        assert "COMPLETED" in statuses, history  # and the study's completion, wherever it was stored
    finally:
        if page is not None:
            page.close()
        for feeder in feeders:
            feeder.bridge.stop(timeout=1)
        for _work_dir, process in agents.values():
            stop_group(process, signal.SIGINT)
        client.close()
