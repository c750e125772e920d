"""Benchmark goliat-monitor's ingest path under the load a fleet of GOLIAT bridges produces.

Starts the server as a subprocess (fresh temp data dir, or scratch PostgreSQL databases), drives N
simulated bridges over real HTTP from this process, and raises the offered rate step by step until
p99 latency reaches 50 ms or a request fails. Then measures the same for `GET /api/health` (the
cost of a request that stores nothing), log-batch latency for workers that already hold 1,000 and
1,000,000 lines, and `GET /api/workers` with 128 workers of 10,000 lines each.

    .venv/bin/python bench/ingest.py                          # SQLite, human-readable
    .venv/bin/python bench/ingest.py --database-url postgres  # scratch PostgreSQL databases
    .venv/bin/python bench/ingest.py --duration 2 --json      # quick run, one JSON object

See bench/README.md for what each figure means and the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from goliat_monitor.db import search_index
from goliat_monitor.domain.gui_state import KEY_MARK, TIME_ORIGIN, Stream, order_key, streams_to_json
from goliat_monitor.settings import normalize_database_url

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # the only host this benchmark ever sends to
PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"

# GOLIAT's bridge, per machine: progress at 5 Hz in total, a 10-line log batch twice a second, a
# heartbeat at start and every 30 s. The rate search scales the first two.
PROGRESS_HZ = 5.0
LOG_BATCH_HZ = 2.0
HEARTBEAT_S = 30.0
LINES_PER_BATCH = 10

P99_LIMIT_MS = 50.0
LADDER = (700, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000, 12500, 15000, 20000)
WARMUP_RATE = 350.0  # requests/s of the untimed warm-up before each rate search
DRAIN_S = 3.0  # GOLIAT drops a progress message after 3 s, so a reply later than that is lost data
LOWER_RUNGS = (500, 350, 250, 175, 125, 90, 60)  # tried only when the first rung fails
SETTLE_S = 20.0  # longest wait for a backlog to clear between steps
QUIET_PROBES = 5  # ... which is over when this many probes in a row answer within QUIET_MS
QUIET_MS = 25.0
REQUEST_TIMEOUT_S = 10.0  # setup and sequential timing requests; GOLIAT's log-batch timeout
SERVER_START_S = 60.0
IDLE_REUSE_S = 4.0  # uvicorn closes keep-alive connections idle for 5 s; reconnect before that

LOG_BATCH_REQUESTS = 200
LOG_BATCH_WARMUP = 10
LOG_SIZES = {"1k": 1_000, "1m": 1_000_000}
LIST_WORKERS = 128
LIST_LINES = 10_000
LIST_REQUESTS = 30

TARGETS = {
    "messages_per_s": ">= 2,000/s (p99 < 50 ms, 0 errors)",
    "log_batch_ratio": "<= 1.5 x the 1k figure",
    "get_workers_ms_128x10k": "< 50 ms",
}

PROGRESS, LOG_BATCH, HEARTBEAT, PROBE = 0, 1, 2, 3

# GOLIAT-like console lines: (message, log_type), sent as the bridge's `status` queue messages.
SAMPLE_LINES = (
    ("--- Simulation 3/36: thelonious, 700 MHz, environmental_x_pos_theta ---", "header"),
    ("  - Setting up simulation...", "progress"),
    ("    - Voxelizing phantom (grid step 1.2 mm, 48.1 M cells)...", "verbose"),
    ("    - Done in 4.21s", "success"),
    ("  - Running iSolve (FDTD, CUDA)...", "progress"),
    ("    - Time step 12000/48000 (25.0 %), 38.2 Mcells/s", "verbose"),
    ("    - Steady state not reached yet, continuing", "info"),
    ("  - Extracting SAR statistics...", "progress"),
    ("    - psSAR10g (head): 0.0213 W/kg, whole-body SAR: 0.0019 W/kg", "info"),
    ("    - Power balance off by 3.1 %", "warning"),
)


# -- a minimal HTTP/1.1 client -----------------------------------------------------------------


class HttpError(Exception):
    """The reply was not HTTP/1.1 framed the way this client understands."""


class Connection:
    """One keep-alive HTTP/1.1 connection; its requests go one at a time, like one client thread.

    Hand-written instead of httpx so the load generator costs a fraction of what the server does:
    requests are pre-encoded bytes, replies are read by Content-Length and never parsed further.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._idle_since = 0.0

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one complete request; returns the status code and the body."""
        if self._writer is not None and time.monotonic() - self._idle_since > IDLE_REUSE_S:
            # The server may be closing this connection right now; a request sent into that race
            # fails with nothing to do with the server's capacity.
            self.close()
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(HOST, self.port)
        reader, writer = self._reader, self._writer
        assert reader is not None
        try:
            writer.write(raw)
            if writer.transport.get_write_buffer_size() > 1 << 16:
                await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 "):
                raise HttpError(f"bad status line {head[:40]!r}")
            status = int(head[9:12])
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at < 0:
                raise HttpError("reply without Content-Length")
            end = lower.find(b"\r\n", at + 17)
            length = int(lower[at + 17 : end])
            body = await reader.readexactly(length) if length else b""
            if b"\r\nconnection: close" in lower:
                self.close()
            self._idle_since = time.monotonic()
            return status, body
        except BaseException:
            # A cancelled or failed request leaves the stream mid-reply: never reuse it.
            self.close()
            raise

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class Requests:
    """Pre-encoded request heads for one server, so building a request is one bytes format."""

    def __init__(self, port: int) -> None:
        self.port = port
        common = f"HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        self._gui = (
            f"POST /api/gui-update {common}Content-Type: application/json\r\nContent-Length: ".encode()
        )
        self._beat = (
            f"POST /api/heartbeat {common}Content-Type: application/json\r\nContent-Length: ".encode()
        )
        self._common = common

    def gui_update(self, body: bytes) -> bytes:
        return b"%s%d\r\n\r\n%s" % (self._gui, len(body), body)

    def heartbeat(self, body: bytes) -> bytes:
        return b"%s%d\r\n\r\n%s" % (self._beat, len(body), body)

    def get(self, path: str) -> bytes:
        return f"GET {path} {self._common}\r\n".encode()


async def call(connection: Connection, raw: bytes) -> Any:
    """One setup request that must succeed; returns the decoded JSON body."""
    async with asyncio.timeout(REQUEST_TIMEOUT_S):
        status, body = await connection.request(raw)
    if status != 200:
        raise RuntimeError(f"setup request failed with HTTP {status}: {body[:200]!r}")
    return json.loads(body)


# -- simulated GOLIAT bridges ------------------------------------------------------------------

OVERALL = b'{"machineId":%s,"message":{"type":"overall_progress","current":%d,"total":100},"timestamp":%.6f}'
STAGE = (
    b'{"machineId":%s,"message":{"type":"stage_progress","name":"Running Simulation",'
    b'"current":%d,"total":100},"timestamp":%.6f}'
)
BATCH = b'{"machineId":%s,"message":{"type":"log_batch","logs":%s,"sequence":%d},"timestamp":%.6f}'


def _log_arrays() -> list[bytes]:
    """A few 10-line `logs` arrays, pre-encoded: the lines rotate so batches are not all equal."""
    arrays = []
    for shift in range(len(SAMPLE_LINES)):
        lines = [SAMPLE_LINES[(shift + k) % len(SAMPLE_LINES)] for k in range(LINES_PER_BATCH)]
        entries = [{"type": "status", "message": m, "log_type": t} for m, t in lines]
        arrays.append(json.dumps(entries).encode())
    return arrays


LOG_ARRAYS = _log_arrays()


def machine_address(index: int, prefix: int = 10) -> str:
    """GOLIAT's machineId is the machine's IP address; each bridge gets its own."""
    index += 1
    return f"{prefix}.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"


def stratified_phases(count: int, rng: random.Random) -> list[float]:
    """Random send phases in [0, 1), one in each 1/count slice, the slices in random order.

    Independent phases made a step's message count vary by several per hundred bridges around
    the rate asked for (the 2,000/s step offered 1,998.2/s with this seed); one phase per slice
    keeps the bridges' timing random and the step's total within one message of the rate.
    """
    slots = list(range(count))
    rng.shuffle(slots)
    return [(slot + rng.random()) / count for slot in slots]


class Bridge:
    """One GOLIAT GUI bridge: its connection, its counters and the bodies it sends."""

    def __init__(
        self,
        index: int,
        requests: Requests,
        rng: random.Random,
        *,
        machine_id: str = "",
        phases: tuple[float, float, float] | None = None,
    ) -> None:
        self.machine_id = machine_id or machine_address(index)
        self.connection = Connection(requests.port)
        self.requests = requests
        self.sequence = 0
        self.ticks = 0
        self.progress_phase, self.log_phase, self.heartbeat_phase = phases or (
            rng.random(),
            rng.random(),
            rng.random(),
        )
        self.next_heartbeat = 0.0
        self._mid = json.dumps(self.machine_id).encode()
        beat = {
            "machineId": self.machine_id,
            "gpuName": "NVIDIA RTX A4000",
            "cpuCores": 16,
            "totalRamGB": 63.9,
            "hostname": f"bench-node-{index:04d}",
        }
        self._heartbeat = requests.heartbeat(json.dumps(beat).encode())

    def message(self, kind: int) -> bytes:
        """The next request of this kind, stamped now, exactly shaped like GOLIAT's."""
        now = time.time()
        if kind == LOG_BATCH:
            body = BATCH % (self._mid, LOG_ARRAYS[self.sequence % len(LOG_ARRAYS)], self.sequence, now)
            self.sequence += 1
            return self.requests.gui_update(body)
        if kind == HEARTBEAT:
            return self._heartbeat
        self.ticks += 1
        template = OVERALL if self.ticks & 1 else STAGE
        return self.requests.gui_update(template % (self._mid, self.ticks // 2 % 101, now))

    def schedule(self, start: float, duration: float, factor: float) -> list[tuple[float, int]]:
        """Send times in [start, start + duration): progress and logs at `factor` times GOLIAT's rates."""
        end = start + duration
        events: list[tuple[float, int]] = []
        for hz, kind, phase in (
            (PROGRESS_HZ * factor, PROGRESS, self.progress_phase),
            (LOG_BATCH_HZ * factor, LOG_BATCH, self.log_phase),
        ):
            period = 1.0 / hz
            count = math.ceil(duration * hz) + 1
            events.extend((start + (phase + k) * period, kind) for k in range(count))
        beat = self.next_heartbeat
        while beat < start:  # beats due between steps are skipped, so the rate stays 1 per 30 s
            beat += HEARTBEAT_S
        while beat < end:
            events.append((beat, HEARTBEAT))
            beat += HEARTBEAT_S
        self.next_heartbeat = beat
        return sorted(e for e in events if e[0] < end)


class HealthClient:
    """A client that only asks `GET /api/health`: the cost of a request that stores nothing."""

    def __init__(self, requests: Requests, rng: random.Random) -> None:
        self.connection = Connection(requests.port)
        self.phase = rng.random()
        self._raw = requests.get("/api/health")

    def message(self, kind: int) -> bytes:
        return self._raw

    def schedule(self, start: float, duration: float, hz: float) -> list[tuple[float, int]]:
        period = 1.0 / hz
        count = math.ceil(duration * hz) + 1
        times = (start + (self.phase + k) * period for k in range(count))
        return [(t, PROBE) for t in times if t < start + duration]


# -- open-loop load ----------------------------------------------------------------------------


@dataclass
class StepResult:
    """One rate step: what was offered, what came back, and how long it took."""

    offered_per_s: float
    achieved_per_s: float
    scheduled: int
    ok: int
    errors: int
    timeouts: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    client_cpu_pct: float
    server_cpu_pct: float
    database_cpu_pct: float
    """PostgreSQL's backends serving this server's database (0 on SQLite: it runs in the server)."""
    database_ms_per_request: float | None
    error_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return (
            self.ok > 0
            and self.errors == 0
            and self.timeouts == 0
            and self.p99_ms is not None
            and self.p99_ms < P99_LIMIT_MS
        )


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


class Counters:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()


async def _drive(
    connection: Connection,
    make: Callable[[int], bytes],
    events: list[tuple[float, int]],
    counters: Counters,
) -> None:
    """Send each request at its scheduled time (or at once when behind); latency counts from the schedule.

    Measuring from the scheduled time, not the send time, keeps a slow reply from hiding the
    requests queued behind it (no coordinated omission).
    """
    loop = asyncio.get_running_loop()
    latencies = counters.latencies
    for due, kind in events:
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            status, _ = await connection.request(make(kind))
        except Exception as exc:
            counters.errors[type(exc).__name__] += 1
            continue
        if status == 200:
            latencies.append(loop.time() - due)
        else:
            counters.errors[f"HTTP {status}"] += 1


class Ui:
    """Rich progress on the console while running; step lines printed above it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            refresh_per_second=4,
        )
        self.task: TaskID = self.progress.add_task("starting", total=None)

    def status(self, description: str, total: float | None = None) -> None:
        self.progress.update(self.task, description=description, total=total, completed=0)

    def print(self, *args: Any) -> None:
        self.progress.console.print(*args)

    async def follow(self, start: float, total: float) -> None:
        """Move the bar along a step until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            self.progress.update(self.task, completed=min(total, max(0.0, loop.time() - start)))
            await asyncio.sleep(0.25)


async def run_step(
    lanes: Sequence[tuple[Connection, Callable[[int], bytes], list[tuple[float, int]]]],
    *,
    start: float,
    duration: float,
    server: Server,
    ui: Ui,
) -> StepResult:
    """Play every lane's schedule; stop waiting DRAIN_S after the last send time."""
    loop = asyncio.get_running_loop()
    counters = Counters()
    scheduled = sum(len(events) for _, _, events in lanes)
    process = psutil.Process(server.process.pid)
    server_cpu0 = sum(process.cpu_times()[:2])
    backends = database_backends(server)
    database_cpu0 = cpu_seconds(backends)
    client_cpu0 = time.process_time()
    wall0 = loop.time()
    ticker = asyncio.create_task(ui.follow(start, duration))
    tasks = [asyncio.create_task(_drive(conn, make, events, counters)) for conn, make, events in lanes]
    _, pending = await asyncio.wait(tasks, timeout=max(0.0, start + duration + DRAIN_S - loop.time()))
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    ticker.cancel()
    wall = max(1e-9, loop.time() - wall0)
    client_cpu = (time.process_time() - client_cpu0) / wall * 100
    server_cpu = (sum(process.cpu_times()[:2]) - server_cpu0) / wall * 100
    database_cpu_s = cpu_seconds(backends) - database_cpu0
    ordered = sorted(counters.latencies)
    errors = sum(counters.errors.values())

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    return StepResult(
        offered_per_s=round(scheduled / duration, 1),
        achieved_per_s=round(len(ordered) / duration, 1),
        scheduled=scheduled,
        ok=len(ordered),
        errors=errors,
        timeouts=scheduled - len(ordered) - errors,
        p50_ms=ms(percentile(ordered, 0.50)),
        p99_ms=ms(percentile(ordered, 0.99)),
        max_ms=ms(ordered[-1] if ordered else None),
        client_cpu_pct=round(client_cpu, 1),
        server_cpu_pct=round(server_cpu, 1),
        database_cpu_pct=round(database_cpu_s / wall * 100, 1),
        database_ms_per_request=round(database_cpu_s / len(ordered) * 1000, 3) if ordered else None,
        error_kinds=dict(counters.errors),
    )


async def settle(probes: Sequence[tuple[Connection, Callable[[], bytes]]]) -> None:
    """Wait (bounded) until the server answers promptly again: QUIET_PROBES sequential probes in a row.

    After an overloaded step the server may still be working through a backlog (queued writes
    outlive the requests that were cancelled); the next step must not pay for it. Probes rotate
    over the lanes so that, with several writer threads, each queue is likely to be probed.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_S
    good = index = 0
    while good < QUIET_PROBES and loop.time() < deadline:
        connection, make = probes[index % len(probes)]
        index += 1
        t0 = loop.time()
        try:
            async with asyncio.timeout(max(0.1, deadline - t0)):
                status, _ = await connection.request(make())
        except Exception:
            status = 0
        if status == 200 and (loop.time() - t0) * 1000 < QUIET_MS:
            good += 1
        else:
            good = 0
            await asyncio.sleep(0.2)
    await asyncio.sleep(0.3)


STEP_HEADER = "  offered/s   got/s   p50 ms   p99 ms  errors  late  cpu server/db/gen  db ms/req"


def step_line(label: str, result: StepResult) -> str:
    """One row under STEP_HEADER; `late` counts requests not answered DRAIN_S after the step."""

    def f(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}"

    verdict = "[green]ok[/]" if result.passed else "[red]FAIL[/]"
    extra = f" {result.error_kinds}" if result.error_kinds else ""
    return (
        f"  {label:>9} {result.achieved_per_s:7.0f} {f(result.p50_ms):>8} {f(result.p99_ms):>8} "
        f"{result.errors:>7} {result.timeouts:>5}  {result.server_cpu_pct:4.0f}%/"
        f"{result.database_cpu_pct:.0f}%/{result.client_cpu_pct:.0f}%"
        f"  {f(result.database_ms_per_request):>9}  {verdict}{extra}"
    )


async def rate_search(
    run_at: Callable[[float], Awaitable[StepResult]],
    ladder: Sequence[float],
    between: Callable[[], Awaitable[None]],
    ui: Ui,
    name: str,
) -> tuple[StepResult | None, list[StepResult]]:
    """Climb the ladder until a step fails; return the highest step held.

    A failed step is retried once (the machine may be shared); a second failure ends the climb.
    When even the first rung fails, lower rungs are tried, so a slow server still gets a figure.
    """
    best: StepResult | None = None
    steps: list[StepResult] = []
    ui.print(STEP_HEADER)

    async def attempt(rate: float) -> StepResult:
        result: StepResult | None = None
        for retry in (False, True):
            ui.status(f"{name}: {rate:,.0f}/s" + (" (retry)" if retry else ""), total=1.0)
            result = await run_at(rate)
            steps.append(result)
            ui.print(step_line(f"{rate:,.0f}" + ("*" if retry else ""), result))
            await between()
            if result.passed:
                break
        assert result is not None
        return result

    for rate in ladder:
        result = await attempt(rate)
        if not result.passed:
            break
        best = result
    if best is None:
        for rate in (r for r in LOWER_RUNGS if r < ladder[0]):
            result = await attempt(rate)
            if result.passed:
                best = result
                break
    return best, steps


# -- the server under test ---------------------------------------------------------------------


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    database_url: str
    data_dir: Path

    @property
    def dialect(self) -> str:
        return "sqlite" if self.database_url.startswith("sqlite") else "postgresql"


def database_backends(server: Server) -> list[psutil.Process]:
    """PostgreSQL's server processes connected to this server's database (none for SQLite)."""
    if server.dialect != "postgresql":
        return []
    import psycopg

    database = server.database_url.rsplit("/", 1)[1].split("?")[0]
    dsn = server.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,)
            )
        ]
    processes = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            processes.append(psutil.Process(pid))
    return processes


def cpu_seconds(processes: Sequence[psutil.Process]) -> float:
    """User + system CPU of processes still alive (a backend that ended takes its share with it)."""
    total = 0.0
    for p in processes:
        with contextlib.suppress(psutil.Error):
            total += sum(p.cpu_times()[:2])
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _server_env() -> dict[str, str]:
    """The caller's environment without goliat-monitor settings: the flags below are the whole config."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GOLIAT_MONITOR_") and key not in ("DATABASE_URL", "PORT")
    }


def _wait_healthy(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/api/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not healthy after {SERVER_START_S:.0f} s; see {log_path}")


@contextlib.contextmanager
def running_server(
    database_url: str | None, data_dir: Path, extra_args: Sequence[str] = ()
) -> Iterator[Server]:
    """`goliat-monitor serve` in a subprocess with its default settings (plus `extra_args`); stopped on exit."""
    data_dir.mkdir(parents=True)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "goliat_monitor",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    if database_url:
        command += ["--database-url", database_url]
    command += list(extra_args)
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=_server_env(), cwd=ROOT)
        try:
            _wait_healthy(port, process, log_path)
            url = database_url or f"sqlite:///{(data_dir / 'goliat-monitor.sqlite3').resolve()}"
            yield Server(port, process, normalize_database_url(url), data_dir)
            if process.poll() is not None:
                raise RuntimeError(f"server died during the run; see {log_path}")
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


class DatabaseTarget:
    """Where each server of the run keeps its data.

    Default: SQLite in a fresh data dir per server. `postgres`: a scratch database on the local
    PostgreSQL per server, dropped afterwards. Any other URL: that database for every server; it
    must hold no workers at start, and each phase retires (marks stale) the workers of the previous
    one, so every measurement sees only its own workers. Its data is left behind.
    """

    def __init__(self, option: str | None) -> None:
        self.option = option
        self.scratch = option == "postgres"
        self.shared = option is not None and not self.scratch
        self.used = False

    @property
    def name(self) -> str:
        if self.option is None:
            return "sqlite"
        if self.scratch:
            return "postgresql"
        return "sqlite" if self.option.startswith("sqlite") else "postgresql"

    @contextlib.contextmanager
    def database(self) -> Iterator[str | None]:
        if self.scratch:
            with scratch_postgres() as url:
                yield url
            return
        if self.shared and self.used:
            retire_workers(normalize_database_url(self.option or ""))
        self.used = True
        yield self.option


@contextlib.contextmanager
def scratch_postgres() -> Iterator[str]:
    """A new, empty database on the local PostgreSQL, dropped (forcibly) afterwards."""
    import psycopg
    from psycopg import sql

    name = f"gm_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# -- direct database access (bulk loads only) --------------------------------------------------


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"timeout": 60})
    return create_engine(url)


def retire_workers(url: str) -> None:
    """Mark every live worker stale, so `GET /api/workers` no longer lists it."""
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE workers SET is_stale = :yes WHERE is_stale = :no"), {"yes": True, "no": False}
            )
    finally:
        engine.dispose()


LINE_STEP_S = 0.125
"""Seconds between bench lines: a binary fraction, so every line's time in ms is exact in SQL too."""
MS_STEP = 1 << 21
"""order_key(t + 0.001, s) - order_key(t, s): one millisecond in key units."""

SQLITE_LOAD = """
WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < :n)
INSERT INTO log_lines (worker_id, ord, ts, log_type, message)
SELECT :worker, :mark + (:t0_ms + i * 125) * :ms_step + i / 10, :t0 + i * 0.125, 'info',
       'Bench line ' || i || ': time step ' || (i * 7 % 48000) || '/48000, 38.2 Mcells/s'
FROM seq
"""

POSTGRES_LOAD = """
INSERT INTO log_lines (worker_id, ord, ts, log_type, message)
SELECT :worker, CAST(:mark AS bigint) + (CAST(:t0_ms AS bigint) + i * 125) * CAST(:ms_step AS bigint) + i / 10,
       CAST(:t0 AS double precision) + i * 0.125,
       'info', 'Bench line ' || i || ': time step ' || (i * 7 % 48000) || '/48000, 38.2 Mcells/s'
FROM generate_series(0, CAST(:n AS integer) - 1) AS g(i)
"""


def _bench_key(t0: float, i: int) -> int:
    return order_key(t0 + i * LINE_STEP_S, i // 10)


def load_lines(url: str, counts: dict[str, int]) -> None:
    """Store `count` log lines for each worker id, as if one bridge had sent count/10 batches of 10.

    Line i has sequence i // 10 and is stamped t0 + i * 0.125 s; the worker row's order state and
    last_seen are set to match, so the server continues the stream (and the session) seamlessly.
    The order keys are computed in SQL, which is checked against order_key itself here and on rows
    read back afterwards.
    """
    counts_t0: dict[str, float] = {}
    newest: dict[str, tuple[float, int]] = {}
    engine = _engine(url)
    sqlite = url.startswith("sqlite")
    try:
        with engine.begin() as conn:
            for worker_id, n in counts.items():
                now = time.time()
                t0 = float(int(now - n * LINE_STEP_S))
                t0_ms = int((t0 - TIME_ORIGIN) * 1000)
                for i in (0, 1, 9, 10, n - 1):
                    assert _bench_key(t0, i) == KEY_MARK + (t0_ms + i * 125) * MS_STEP + i // 10
                params = {
                    "worker": worker_id,
                    "n": n,
                    "t0": t0,
                    "t0_ms": t0_ms,
                    "mark": KEY_MARK,
                    "ms_step": MS_STEP,
                }
                conn.execute(text(SQLITE_LOAD if sqlite else POSTGRES_LOAD), params)
                newest[worker_id] = (t0 + (n - 1) * LINE_STEP_S, n)
                counts_t0[worker_id] = t0
            # Last, with the time of the end of the load: 1M lines take PostgreSQL ~40 s, longer
            # than a worker may stay silent before its session ends.
            for worker_id, (newest_at, n) in newest.items():
                now = time.time()
                conn.execute(
                    text(
                        "UPDATE workers SET log_newest = :newest, log_streams = :streams, last_seen = :now, "
                        "updated_at = :now WHERE id = :worker"
                    ),
                    {
                        "newest": newest_at,
                        "streams": streams_to_json((Stream((n - 1) // 10, now, now),)),
                        "now": now,
                        "worker": worker_id,
                    },
                )
        if sqlite:
            # What the server's log indexer would have done as the lines arrived: left to it, it
            # would index them in small batches during the timed phase, holding the write lock.
            search_index.index_all(engine)
        else:
            # What autovacuum does soon after a bulk change; without it the planner guesses blind.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE log_lines"))
        with engine.connect() as conn:
            for worker_id, n in counts.items():
                stored, low, high = conn.execute(
                    text("SELECT count(*), min(ord), max(ord) FROM log_lines WHERE worker_id = :w"),
                    {"w": worker_id},
                ).one()
                t0 = counts_t0[worker_id]
                expected = (n, _bench_key(t0, 0), _bench_key(t0, n - 1))
                if (stored, low, high) != expected:
                    raise RuntimeError(
                        f"bulk load of {worker_id}: got {(stored, low, high)}, want {expected}"
                    )
    finally:
        engine.dispose()


# -- phases ------------------------------------------------------------------------------------


@dataclass
class Args:
    database_url: str | None
    duration: float
    bridges: int
    json: bool


async def register(requests: Requests, machines: Sequence[str]) -> dict[str, str]:
    """One heartbeat per machine (over a few connections); returns machineId -> worker id."""
    connections = [Connection(requests.port) for _ in range(min(8, len(machines)))]
    for at in range(0, len(machines), len(connections)):
        chunk = machines[at : at + len(connections)]
        await asyncio.gather(
            *(
                call(conn, requests.heartbeat(json.dumps({"machineId": m, "hostname": m}).encode()))
                for conn, m in zip(connections, chunk, strict=False)
            )
        )
    workers = await call(connections[0], requests.get("/api/workers"))
    for conn in connections:
        conn.close()
    ids = {w["machineId"]: w["id"] for w in workers if w["machineId"] in set(machines)}
    if len(ids) != len(machines):
        raise RuntimeError(f"registered {len(ids)} of {len(machines)} workers")
    return ids


async def phase_noop_and_ingest(args: Args, server: Server, ui: Ui, target: DatabaseTarget) -> dict[str, Any]:
    """The health-check rate search, then the ingest rate search, on one server."""
    loop = asyncio.get_running_loop()
    requests = Requests(server.port)
    rng = random.Random(20240607)
    warmup = min(3.0, args.duration)

    if target.shared:
        probe = Connection(server.port)
        existing = await call(probe, requests.get("/api/workers?includeStale=true"))
        probe.close()
        if existing:
            raise RuntimeError(
                "the database given with --database-url already holds workers; use an empty one"
            )

    # GET /api/health
    clients = [HealthClient(requests, rng) for _ in range(args.bridges)]
    probes: list[tuple[Connection, Callable[[], bytes]]] = [
        (c.connection, functools.partial(c.message, PROBE)) for c in clients
    ]

    async def health_at(rate: float) -> StepResult:
        start = loop.time() + 0.05
        lanes = [
            (c.connection, c.message, c.schedule(start, args.duration, rate / args.bridges)) for c in clients
        ]
        return await run_step(lanes, start=start, duration=args.duration, server=server, ui=ui)

    async def health_between() -> None:
        await settle(probes)

    ui.print("[bold]GET /api/health[/] (stores nothing)")
    ui.status("health: warm-up", total=1.0)
    start = loop.time() + 0.05
    await run_step(
        [(c.connection, c.message, c.schedule(start, warmup, WARMUP_RATE / args.bridges)) for c in clients],
        start=start,
        duration=warmup,
        server=server,
        ui=ui,
    )
    await health_between()
    noop_best, noop_steps = await rate_search(health_at, LADDER, health_between, ui, "health")
    for c in clients:
        c.connection.close()

    # POST /api/gui-update + heartbeats, shaped like GOLIAT's bridge
    phases = zip(*(stratified_phases(args.bridges, rng) for _ in range(3)), strict=True)
    bridges = [Bridge(i, requests, rng, phases=pair) for i, pair in enumerate(phases)]
    ui.status("ingest: registering bridges")
    await asyncio.gather(*(call(b.connection, b.message(HEARTBEAT)) for b in bridges))
    now = loop.time()
    for b in bridges:  # a fleet's bridges started at different times: spread their heartbeats
        b.next_heartbeat = now + HEARTBEAT_S * b.heartbeat_phase
    base_rate = args.bridges * (PROGRESS_HZ + LOG_BATCH_HZ + 1 / HEARTBEAT_S)
    ladder = [base_rate] + [r for r in LADDER if r > base_rate * 1.2]

    async def ingest_at(rate: float) -> StepResult:
        factor = (rate - args.bridges / HEARTBEAT_S) / (args.bridges * (PROGRESS_HZ + LOG_BATCH_HZ))
        start = loop.time() + 0.05
        lanes = [(b.connection, b.message, b.schedule(start, args.duration, factor)) for b in bridges]
        return await run_step(lanes, start=start, duration=args.duration, server=server, ui=ui)

    async def ingest_between() -> None:
        await settle([(b.connection, functools.partial(b.message, PROGRESS)) for b in bridges])

    ui.print(f"[bold]POST /api/gui-update[/] from {args.bridges} bridges (5 Hz progress, 2 Hz log batches)")
    ui.status("ingest: warm-up", total=1.0)
    start = loop.time() + 0.05
    await run_step(
        [(b.connection, b.message, b.schedule(start, warmup, WARMUP_RATE / base_rate)) for b in bridges],
        start=start,
        duration=warmup,
        server=server,
        ui=ui,
    )
    await ingest_between()
    best, steps = await rate_search(ingest_at, ladder, ingest_between, ui, "ingest")
    for b in bridges:
        b.connection.close()
    return {
        "messages_per_s": best.achieved_per_s if best else 0.0,
        "offered_messages_per_s": best.offered_per_s if best else 0.0,
        "p50_ms": best.p50_ms if best else None,
        "p99_ms": best.p99_ms if best else None,
        "errors": sum(s.errors for s in steps),
        "timeouts": sum(s.timeouts for s in steps),
        "noop_requests_per_s": noop_best.achieved_per_s if noop_best else 0.0,
        "noop_p99_ms": noop_best.p99_ms if noop_best else None,
        "noop_errors": sum(s.errors for s in noop_steps),
        "ingest_steps": [asdict(s) for s in steps],
        "noop_steps": [asdict(s) for s in noop_steps],
        # The most any step got through, held or not: the server's throughput when saturated.
        "ingest_saturation_per_s": max(s.achieved_per_s for s in steps),
        "noop_saturation_per_s": max(s.achieved_per_s for s in noop_steps),
    }


def _stats(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    median = percentile(ordered, 0.5)
    p99 = percentile(ordered, 0.99)
    assert median is not None and p99 is not None
    return round(median, 2), round(p99, 2)


async def phase_log_batches(server: Server, ui: Ui) -> dict[str, Any]:
    """Log-batch latency for a worker holding 1k lines and one holding 1M, timed interleaved."""
    requests = Requests(server.port)
    machines = {size: f"bench-logs-{size}" for size in LOG_SIZES}
    ui.status("log batches: registering workers")
    ids = await register(requests, list(machines.values()))
    total = sum(LOG_SIZES.values())
    ui.status(f"log batches: bulk-loading {total:,} lines")
    t0 = time.monotonic()
    load_lines(server.database_url, {ids[machines[size]]: n for size, n in LOG_SIZES.items()})
    ui.print(f"  bulk-loaded {total:,} log lines in {time.monotonic() - t0:.1f} s")

    bridges = {
        size: Bridge(i, requests, random.Random(i), machine_id=machines[size])
        for i, size in enumerate(LOG_SIZES)
    }
    for size, bridge in bridges.items():
        bridge.sequence = (LOG_SIZES[size] - 1) // 10 + 1  # continue the stored run
    samples: dict[str, list[float]] = {size: [] for size in LOG_SIZES}
    ui.status("log batches: timing", total=LOG_BATCH_WARMUP + LOG_BATCH_REQUESTS)
    for k in range(LOG_BATCH_WARMUP + LOG_BATCH_REQUESTS):
        for size, bridge in bridges.items():  # interleaved, so noise hits both alike
            raw = bridge.message(LOG_BATCH)
            t = time.perf_counter()
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                status, body = await bridge.connection.request(raw)
            elapsed = (time.perf_counter() - t) * 1000
            if status != 200:
                raise RuntimeError(f"log batch failed with HTTP {status}: {body[:200]!r}")
            if k >= LOG_BATCH_WARMUP:
                samples[size].append(elapsed)
        ui.progress.update(ui.task, completed=k + 1)

    # Still the same sessions: had a worker gone offline, the batches would have gone to a new one.
    conn = Connection(server.port)
    workers = await call(conn, requests.get("/api/workers"))
    conn.close()
    for b in bridges.values():
        b.connection.close()
    if sorted(w["id"] for w in workers) != sorted(ids.values()):
        raise RuntimeError("log batches went to a new worker session; the timing is not valid")

    result: dict[str, Any] = {}
    for size in LOG_SIZES:
        median, p99 = _stats(samples[size])
        result[f"log_batch_ms_at_{size}"] = median
        result[f"log_batch_p99_ms_at_{size}"] = p99
        ui.print(f"  worker with {LOG_SIZES[size]:>9,} lines: median {median:6.2f} ms  p99 {p99:6.2f} ms")
    return result


async def phase_list_workers(server: Server, ui: Ui) -> dict[str, Any]:
    """`GET /api/workers` with 128 workers that each hold 10,000 log lines."""
    requests = Requests(server.port)
    machines = [f"bench-list-{i:03d}" for i in range(LIST_WORKERS)]
    ui.status(f"workers list: registering {LIST_WORKERS} workers")
    ids = await register(requests, machines)
    ui.status(f"workers list: bulk-loading {LIST_WORKERS * LIST_LINES:,} lines")
    t0 = time.monotonic()
    load_lines(server.database_url, dict.fromkeys(ids.values(), LIST_LINES))
    ui.print(f"  bulk-loaded {LIST_WORKERS * LIST_LINES:,} log lines in {time.monotonic() - t0:.1f} s")
    conn = Connection(server.port)
    raw = requests.get("/api/workers")
    samples: list[float] = []
    size = 0
    ui.status("workers list: timing", total=LIST_REQUESTS + 3)
    for k in range(LIST_REQUESTS + 3):
        t = time.perf_counter()
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            status, body = await conn.request(raw)
        elapsed = (time.perf_counter() - t) * 1000
        if status != 200:
            raise RuntimeError(f"GET /api/workers failed with HTTP {status}")
        if k >= 3:
            samples.append(elapsed)
        size = len(body)
        ui.progress.update(ui.task, completed=k + 1)
    listed = json.loads(body)
    conn.close()
    if len(listed) != LIST_WORKERS or any(w["guiState"] is None for w in listed):
        raise RuntimeError(
            f"GET /api/workers listed {len(listed)} workers, expected {LIST_WORKERS} with state"
        )
    median, p99 = _stats(samples)
    ui.print(
        f"  GET /api/workers ({LIST_WORKERS} workers, {size:,} bytes): median {median:.2f} ms  p99 {p99:.2f} ms"
    )
    return {"get_workers_ms_128x10k": median, "get_workers_p99_ms_128x10k": p99}


async def run(args: Args, ui: Ui) -> dict[str, Any]:
    target = DatabaseTarget(args.database_url)
    results: dict[str, Any] = {"database": target.name, "duration_s": args.duration, "bridges": args.bridges}
    wall0 = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="gm-bench-"))
    try:
        phases: tuple[tuple[str, Callable[[Server], Awaitable[dict[str, Any]]]], ...] = (
            ("ingest", lambda s: phase_noop_and_ingest(args, s, ui, target)),
            ("logs", lambda s: phase_log_batches(s, ui)),
            ("list", lambda s: phase_list_workers(s, ui)),
        )
        phase_s: dict[str, float] = {}
        for name, phase in phases:
            t0 = time.monotonic()
            ui.status(f"{name}: starting server")
            with target.database() as url, running_server(url, workdir / name) as server:
                results.update(await phase(server))
            phase_s[name] = round(time.monotonic() - t0, 1)
        results["phase_s"] = phase_s
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["wall_s"] = round(time.monotonic() - wall0, 1)
    results["targets_met"] = {
        "messages_per_s": results["messages_per_s"] >= 2000 and results["errors"] == 0,
        "log_batch_ratio": results["log_batch_ms_at_1m"] <= 1.5 * results["log_batch_ms_at_1k"],
        "get_workers_ms_128x10k": results["get_workers_ms_128x10k"] < 50,
    }
    return results


FIELD_ORDER = (
    "messages_per_s",
    "p50_ms",
    "p99_ms",
    "errors",
    "log_batch_ms_at_1k",
    "log_batch_ms_at_1m",
    "get_workers_ms_128x10k",
    "noop_requests_per_s",
    "database",
    "duration_s",
    "bridges",
)


def summary_table(results: dict[str, Any]) -> Table:
    table = Table(
        title=f"goliat-monitor ingest benchmark ({results['database']}, {results['bridges']} bridges)"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target")
    met = results["targets_met"]
    rows: tuple[tuple[str, str, bool | None], ...] = (
        ("messages_per_s", TARGETS["messages_per_s"], met["messages_per_s"]),
        ("p50_ms", "", None),
        ("p99_ms", "< 50", None),
        ("errors", "0", results["errors"] == 0),
        ("ingest_saturation_per_s", "", None),
        ("log_batch_ms_at_1k", "", None),
        ("log_batch_ms_at_1m", TARGETS["log_batch_ratio"], met["log_batch_ratio"]),
        ("get_workers_ms_128x10k", TARGETS["get_workers_ms_128x10k"], met["get_workers_ms_128x10k"]),
        ("noop_requests_per_s", "", None),
    )
    for key, goal, ok in rows:
        mark = "" if ok is None else (" [green]met[/]" if ok else " [red]missed[/]")
        table.add_row(key, str(results[key]), f"{goal}{mark}")
    ratio = (
        results["messages_per_s"] / results["noop_requests_per_s"] if results["noop_requests_per_s"] else 0
    )
    table.caption = f"ingest / no-op ratio {ratio:.2f}; whole run {results['wall_s']} s"
    return table


def parse_args(argv: Sequence[str] | None = None) -> Args:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy URL of an empty database to use, or `postgres` for scratch databases on the local "
        "PostgreSQL (created and dropped). Default: SQLite in a temp data dir.",
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per rate step (default 5)")
    parser.add_argument("--bridges", type=int, default=100, help="simulated GOLIAT bridges (default 100)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ns = parser.parse_args(argv)
    if ns.duration <= 0 or ns.duration > 600:
        parser.error("--duration must be in (0, 600] seconds")
    if not 1 <= ns.bridges <= 2000:
        parser.error("--bridges must be in [1, 2000]")
    return Args(ns.database_url, ns.duration, ns.bridges, ns.json)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (uvicorn[standard] brings it): a cheaper load generator."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=args.json)
    ui = Ui(console)
    try:
        with ui.progress, asyncio.Runner(loop_factory=_loop_factory()) as runner:
            results = runner.run(run(args, ui))
    except RuntimeError as exc:  # a failed precondition or check, explained in the message
        Console(stderr=True).print(f"[red]error:[/] {exc}")
        return 1
    if args.json:
        ordered = {key: results[key] for key in FIELD_ORDER}
        ordered.update({k: v for k, v in results.items() if k not in ordered})
        print(json.dumps(ordered))
    else:
        console.print(summary_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
