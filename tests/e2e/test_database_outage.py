"""A PostgreSQL restart under a GOLIAT-like load costs only the seconds it lasts.

Two `goliat-monitor serve` replicas share a PostgreSQL of the test's own. GOLIAT bridges (with
spools) and heartbeat probes keep writing while the database is stopped for a few seconds and
started again. Writes in flight get 503 with Retry-After, never a 500 or a hang; both replicas
answer writes again within 5 s of the database's return; the LISTEN/NOTIFY relay reconnects;
every line the bridges sent is stored once and in order; SIGTERM stops a replica within its
grace period, with the database up and with it down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from goliat_monitor.bridge import WebGUIBridge
from tests.e2e.private_postgres import PrivatePostgres, find_server_binaries
from tests.support import free_port, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

OUTAGE_S = 3.0
RECOVERY_BOUND_S = 5.0
"""Writes must be answered again this soon after the database is back."""
IN_FLIGHT_BOUND_S = 5.0
"""No write may wait longer than this for its answer, outage or not."""
GRACE_S = 10.0
"""SIGTERM must end a replica within this (Docker's default grace period)."""
BRIDGES = 4


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    binaries = find_server_binaries()
    if binaries is None:
        message = "PostgreSQL's server binaries (initdb, pg_ctl) are not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    pg = PrivatePostgres(binaries)
    try:
        pg.start()
        with psycopg.connect(pg.libpq_url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE goliat")
        yield pg
    finally:
        pg.remove()


class Replica:
    """`goliat-monitor serve` in a subprocess on the private database."""

    def __init__(self, name: str, database_url: str, data_dir: Path) -> None:
        self.name = name
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = data_dir.parent / f"{name}.log"
        argv = [sys.executable, "-m", "goliat_monitor", "serve", "--port", self.url.rsplit(":", 1)[1]]
        argv += ["--data-dir", str(data_dir), "--database-url", database_url, "--log-level", "warning"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._healthy, 60, f"replica {name} to answer", every=0.1)

    def _healthy(self) -> bool:
        assert self.process.poll() is None, f"replica {self.name} exited:\n{self.tail()}"
        try:
            return httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def terminate(self) -> None:
        """SIGTERM, and fail unless the process is gone within `GRACE_S`."""
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(GRACE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"{self.name} ignored SIGTERM for {GRACE_S} s:\n{self.tail()}") from None
        # uvicorn re-raises the signal it caught once its graceful shutdown is done.
        assert code in (0, -signal.SIGTERM), f"{self.name} exited with {code}:\n{self.tail()}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@dataclass
class Attempt:
    replica: str
    started: float
    finished: float
    status: int | None
    retry_after: str | None = None
    body: Any = None


@dataclass
class Probe:
    """Writes as fast as a busy GOLIAT worker, recording every answer and how long it took."""

    replica: Replica
    machine_id: str
    attempts: list[Attempt] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name=f"probe-{self.machine_id}", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        with httpx.Client(base_url=self.replica.url, timeout=IN_FLIGHT_BOUND_S * 3) as client:
            sequence = 0
            while not self.stop.is_set():
                sequence += 1
                started = time.monotonic()
                try:
                    if sequence % 2:
                        response = client.post("/api/heartbeat", json={"machineId": self.machine_id})
                    else:
                        message = {"type": "overall_progress", "current": sequence % 100, "total": 100}
                        response = client.post(
                            "/api/gui-update", json={"machineId": self.machine_id, "message": message}
                        )
                except httpx.HTTPError:
                    self.attempts.append(Attempt(self.replica.name, started, time.monotonic(), None))
                else:
                    body = (
                        response.json()
                        if response.headers.get("content-type") == "application/json"
                        else None
                    )
                    self.attempts.append(
                        Attempt(
                            self.replica.name,
                            started,
                            time.monotonic(),
                            response.status_code,
                            response.headers.get("retry-after"),
                            body,
                        )
                    )
                self.stop.wait(0.03)


class EventWatcher:
    """Reads a replica's SSE stream of worker cards, reconnecting, and keeps each machine id seen."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.machines: set[str] = set()
        self.connected = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sse-watcher", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                with httpx.stream(
                    "GET", f"{self.replica.url}/api/events", params={"workers": "all"}, timeout=5
                ) as response:
                    for line in response.iter_lines():
                        self.connected.set()
                        if line.startswith("data:"):
                            data = json.loads(line[5:])
                            if isinstance(data, dict) and isinstance(data.get("machineId"), str):
                                self.machines.add(data["machineId"])
                        if self.stop.is_set():
                            return
            except (httpx.HTTPError, ValueError):
                self.stop.wait(0.2)


def relayed(sender: Replica, watcher: EventWatcher, machine_id: str) -> None:
    """A heartbeat through `sender` reaches the other replica's browsers, through the relay."""

    def heard() -> bool:
        if machine_id in watcher.machines:
            return True
        httpx.post(f"{sender.url}/api/heartbeat", json={"machineId": machine_id}, timeout=5)
        return False

    wait_for(heard, 15, f"{machine_id} to reach replica {watcher.replica.name} through the relay", every=0.5)


def stored_lines(client: httpx.Client, machine_id: str) -> list[str]:
    worker = next(w for w in client.get("/api/workers").json() if w["machineId"] == machine_id)
    detail = client.get(f"/api/workers/{worker['id']}").json()
    lines = [line["message"] for line in detail["guiState"]["logMessages"]]
    older = detail["olderLogsCursor"]
    while older:
        page = client.get(f"/api/workers/{worker['id']}/logs", params={"before": older}).json()
        lines = [line["message"] for line in page["logs"]] + lines
        older = page["nextBefore"]
    return lines


def wait_for_success_after(probes: list[Probe], replica: str, since: float) -> float:
    """When `replica` first answered a write with 200 after `since`."""

    def first_success() -> float | None:
        ok = [a.finished for p in probes for a in p.attempts if a.replica == replica and a.status == 200]
        return min((t for t in ok if t > since), default=None)

    return wait_for(first_success, 15, f"replica {replica} to answer writes again")


class Producer:
    """A GOLIAT study's output: numbered log lines and progress, into a bridge, until stopped."""

    def __init__(self, bridge: WebGUIBridge, name: str) -> None:
        self.bridge = bridge
        self.name = name
        self.lines: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"goliat-{name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            line = f"{self.name} line {len(self.lines):05d}"
            self.lines.append(line)
            self.bridge.enqueue({"type": "status", "message": line, "log_type": "info"})
            self.bridge.enqueue({"type": "overall_progress", "current": len(self.lines) % 100, "total": 100})
            self.stop.wait(0.04)


def test_a_database_restart_under_load_costs_only_its_own_seconds(
    private_pg: PrivatePostgres, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    replica_a = Replica("a", private_pg.url("goliat"), artifacts)  # migrates the empty database
    replica_b = Replica("b", private_pg.url("goliat"), artifacts)
    replicas = [replica_a, replica_b]
    watcher = EventWatcher(replica_b)
    probes = [Probe(replica, f"probe-{replica.name}-{n}") for replica in replicas for n in range(2)]
    bridges: list[WebGUIBridge] = []
    producers: list[Producer] = []
    try:
        assert watcher.connected.wait(10), "no SSE stream from replica b"
        relayed(replica_a, watcher, "relay-before")

        for n in range(BRIDGES):
            bridge = WebGUIBridge(
                replicas[n % 2].url,
                f"198.51.100.{60 + n}",
                spool_path=str(tmp_path / f"spool-{n}.sqlite3"),
                heartbeat_interval=1.0,
                retry_base=0.2,
                retry_cap=2.0,
            )
            bridge.start()
            bridges.append(bridge)
            producers.append(Producer(bridge, f"bridge{n}"))
        for probe in probes:
            probe.start()
        wait_for(
            lambda: (
                all(any(a.status == 200 for a in p.attempts) for p in probes)
                and all(b.sent > 5 for b in bridges)
            ),
            20,
            "the load to run",
        )

        down = time.monotonic()
        private_pg.stop("fast")
        wait_for(
            lambda: (
                {a.replica for p in probes for a in p.attempts if a.started > down and a.status == 503}
                == {"a", "b"}
            ),
            10,
            "both replicas to answer 503 while the database is down",
        )
        time.sleep(max(0.0, down + OUTAGE_S - time.monotonic()))  # the outage itself lasts this long
        private_pg.start()
        up = time.monotonic()

        back = {replica.name: wait_for_success_after(probes, replica.name, up) for replica in replicas}
        relayed(replica_a, watcher, "relay-after")
        settled = up + RECOVERY_BOUND_S
        wait_for(
            lambda: all(any(a.started > settled for a in p.attempts) for p in probes),
            15,
            "writes from every probe after the recovery bound",
        )
        for probe in probes:
            probe.stop.set()
        for producer in producers:
            producer.stop.set()
            producer.thread.join(5)
        for bridge in bridges:
            bridge.stop(timeout=30)

        for name, when in back.items():
            assert when - up <= RECOVERY_BOUND_S, (
                f"{name} answered writes only {when - up:.1f} s after the return"
            )
        attempts = [a for p in probes for a in p.attempts]
        refused = [a for a in attempts if a.status != 200]
        assert refused, "the outage refused no write"
        for attempt in refused:
            assert attempt.status == 503, attempt
            assert attempt.retry_after is not None and int(attempt.retry_after) >= 1, attempt
            assert isinstance(attempt.body, dict) and attempt.body.get("error"), attempt
            assert attempt.finished >= down and attempt.started <= settled, attempt
        slowest = max(attempts, key=lambda a: a.finished - a.started)
        assert slowest.finished - slowest.started <= IN_FLIGHT_BOUND_S, slowest

        with httpx.Client(base_url=replica_b.url, timeout=30) as client:
            for bridge, producer in zip(bridges, producers, strict=True):
                assert bridge.dropped == 0 and bridge.rejected == 0
                assert bridge.retries > 0, f"{bridge.machine_id} never met the outage"
                assert bridge.pending == 0
                assert stored_lines(client, bridge.machine_id) == producer.lines

        replica_b.terminate()  # with the database up

        during_shutdown = [Probe(replica_a, f"probe-shutdown-{n}") for n in range(2)]
        for probe in during_shutdown:
            probe.start()
        private_pg.stop("fast")
        down = time.monotonic()
        wait_for(
            lambda: any(a.started > down and a.status == 503 for p in during_shutdown for a in p.attempts),
            10,
            "replica a to answer 503 with the database down",
        )
        replica_a.terminate()  # with the database down and writes arriving
        for probe in during_shutdown:
            probe.stop.set()
        assert all(a.status in (None, 503) for p in during_shutdown for a in p.attempts if a.started > down)
    finally:
        watcher.stop.set()
        for probe in probes:
            probe.stop.set()
        for producer in producers:
            producer.stop.set()
        for bridge in bridges:
            bridge.stop(timeout=0)
        for replica in replicas:
            replica.kill()
