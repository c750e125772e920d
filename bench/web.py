"""Benchmark the live dashboard: push latency to the DOM, worker-page render time, SSE fan-out.

1. latency: 100 GOLIAT machines post progress and log batches; a headless Chromium shows the
   overview and one worker's page. For each accepted progress message, the time until the
   overview's DOM shows it (or a later value of the same worker: coalescing may skip intermediate
   values), measured against the moment the server received it; for each log line of the watched
   worker, the time from its 200 until the worker page's log console shows it.
   With `--database-url`, two replicas share the database: the load goes to one, the browser to
   the other, so every update crosses the LISTEN/NOTIFY relay.
2. render: a worker with 1,000,000 log lines (rows bulk-inserted into SQLite); the time to serve
   its page (target < 100 ms), plus paging deep into the history.
3. fan-out: server CPU under the same load with 0, then 20 open EventSource clients (one browser
   context each, as 20 people would), frames and bytes each client receives, delivery latency.

The server runs in its own process (uvicorn), so its CPU time is measured apart from the load
generator and the browser; on a 2-core machine all three still share the cores.

    .venv/bin/python bench/web.py                 # human-readable figures
    .venv/bin/python bench/web.py --json          # one JSON object
    .venv/bin/python bench/web.py --only render   # one part: latency | render | fanout
    .venv/bin/python bench/web.py --only latency --database-url postgres  # two replicas, scratch db
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
from sqlalchemy import create_engine

from goliat_monitor.db import search_index
from goliat_monitor.domain.gui_state import order_key
from ingest import free_port, scratch_postgres  # the benchmark beside this one

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RENDER_TARGET_MS = 100.0
T = TypeVar("T")

OBSERVE_CARDS = """() => {
  window.__seen = [];
  const box = document.querySelector('#workers');
  for (const card of box.querySelectorAll('.card.worker')) {
    card.__last = card.querySelector('[data-f=progress]').textContent;
  }
  new MutationObserver(() => {
    const now = performance.timeOrigin + performance.now();
    for (const card of box.querySelectorAll('.card.worker')) {
      const text = card.querySelector('[data-f=progress]').textContent;
      if (card.__last !== text) {
        card.__last = text;
        window.__seen.push([card.dataset.id, text, now, card.querySelector('[data-f=seen]').dataset.ago]);
      }
    }
  }).observe(box, {subtree: true, childList: true, characterData: true});
}"""

OBSERVE_LOG = """() => {
  window.__lines = [];
  new MutationObserver((records) => {
    const now = performance.timeOrigin + performance.now();
    for (const record of records) {
      for (const node of record.addedNodes) {
        const msg = node.querySelector && node.querySelector('.msg');
        if (msg) window.__lines.push([msg.textContent, now]);
      }
    }
  }).observe(document.querySelector('#log-lines'), {childList: true});
}"""

OPEN_EVENTSOURCE = """() => {
  window.__got = []; window.__bytes = 0;
  const source = new EventSource('/api/events?workers=all');
  source.addEventListener('worker', (e) => {
    window.__bytes += e.data.length;
    const w = JSON.parse(e.data);
    window.__got.push([w.id, (w.guiState || {}).progress, performance.timeOrigin + performance.now(), w.lastSeen]);
  });
  return new Promise((resolve) => source.addEventListener('hello', () => resolve(true)));
}"""


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 2),
        "p90": round(percentile(values, 90), 2),
        "p99": round(percentile(values, 99), 2),
        "max": round(max(values), 2) if values else float("nan"),
    }


# -- the server, in its own process --------------------------------------------------------------


@contextlib.contextmanager
def run_server(data_dir: Path, database_url: str | None = None) -> Iterator[tuple[str, psutil.Process]]:
    port = free_port()
    env = {
        **os.environ,
        "GOLIAT_MONITOR_DATA_DIR": str(data_dir),
        "GOLIAT_MONITOR_PORT": str(port),
        "GOLIAT_MONITOR_OFFLINE_AFTER_S": "120",
    }
    if database_url is not None:
        env["GOLIAT_MONITOR_DATABASE_URL"] = database_url
    command = [
        sys.executable, "-m", "uvicorn", "goliat_monitor.server.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError("the server did not start")
        time.sleep(0.1)
    try:
        yield url, psutil.Process(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run asyncio code beside Playwright's sync API, which owns this thread's event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def machine(i: int) -> str:
    return f"10.1.{i // 250}.{i % 250 + 1}"


class RawConnection:
    """A keep-alive HTTP/1.1 connection that posts JSON, hand-rolled.

    httpx spends milliseconds of CPU per request; on a 2-core machine shared with the server and a
    browser, the load generator itself would then be what limits the figures.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.lock = asyncio.Lock()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, Any]) -> int:
        payload = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode()
        async with self.lock:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            self.writer.write(head + payload)
            header = await self.reader.readuntil(b"\r\n\r\n")
            status = int(header.split(b" ", 2)[1])
            length = 0
            for line in header.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await self.reader.readexactly(length)
            return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Load:
    """`workers` GOLIAT machines, each posting progress `rate` times a second, values rising, and
    a batch of log lines `log_rate` times a second."""

    def __init__(
        self, url: str, workers: int, rate: float, connections: int = 16, log_rate: float = 0.0
    ) -> None:
        self.url, self.workers, self.rate, self.connections = url, workers, rate, connections
        self.log_rate = log_rate
        self.accepted: list[tuple[str, float, float]] = []  # machine, percent, 200 received at (ms)
        self.lines_accepted: list[tuple[str, float]] = []  # log line text, 200 received at (ms)
        self.sent: list[tuple[str, float, float]] = []  # machine, percent, request sent at (ms)
        self.round_trips: list[float] = []
        self.failures = 0

    async def register(self) -> dict[str, str]:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            for i in range(self.workers):
                await client.post(
                    "/api/heartbeat",
                    json={"machineId": machine(i), "hostname": f"node-{i:03d}", "gpuName": "RTX 4090"},
                )
                await client.post(
                    "/api/gui-update",
                    json={
                        "machineId": machine(i),
                        "message": {"type": "overall_progress", "current": 0, "total": 1000},
                        "timestamp": time.time(),
                    },
                )
            workers = (await client.get("/api/workers")).json()
        return {w["machineId"]: w["id"] for w in workers}

    async def run(self, seconds: float) -> None:
        address = httpx.URL(self.url)
        pool = [RawConnection(address.host, address.port or 80) for _ in range(self.connections)]
        stop = time.monotonic() + seconds
        try:
            machines = [self._machine(pool[i % len(pool)], i, stop) for i in range(self.workers)]
            if self.log_rate > 0:
                machines += [self._logs(pool[i % len(pool)], i, stop) for i in range(self.workers)]
            await asyncio.gather(*machines)
        finally:
            for connection in pool:
                connection.close()

    async def _machine(self, connection: RawConnection, i: int, stop: float) -> None:
        await asyncio.sleep(i / self.workers / self.rate)  # spread the machines over one period
        count = 0
        period = 1 / self.rate
        next_at = time.monotonic()
        while time.monotonic() < stop:
            count += 1
            body = {
                "machineId": machine(i),
                "message": {"type": "overall_progress", "current": count, "total": 1000},
                "timestamp": time.time(),
            }
            sent = time.time() * 1000
            try:
                status = await connection.post("/api/gui-update", body)
            except (OSError, asyncio.IncompleteReadError):
                self.failures += 1
                status = 0
            if status == 200:
                done = time.time() * 1000
                self.accepted.append((machine(i), round(count / 10, 1), done))
                self.sent.append((machine(i), round(count / 10, 1), sent))
                self.round_trips.append(done - sent)
            elif status:
                self.failures += 1
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _logs(self, connection: RawConnection, i: int, stop: float) -> None:
        """Log batches of three lines, each line's text unique, so the page's console can be matched."""
        period = 1 / self.log_rate
        await asyncio.sleep((i + 0.5) / self.workers * period)
        sequence = 0
        next_at = time.monotonic()
        while time.monotonic() < stop:
            texts = [f"{machine(i)} batch {sequence} line {n}" for n in range(3)]
            made = time.time()
            body = {
                "machineId": machine(i),
                "message": {
                    "type": "log_batch",
                    "logs": [{"message": t, "log_type": "info", "timestamp": made} for t in texts],
                    "sequence": sequence,
                },
                "timestamp": made,
            }
            sequence += 1
            try:
                status = await connection.post("/api/gui-update", body)
            except (OSError, asyncio.IncompleteReadError):
                self.failures += 1
                status = 0
            if status == 200:
                done = time.time() * 1000
                self.lines_accepted += [(t, done) for t in texts]
            elif status:
                self.failures += 1
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def match_latencies(
    accepted: list[tuple[str, float, float]], seen: list[tuple[str, float, float]]
) -> tuple[list[float], int]:
    """For every accepted message, when its worker first showed that value or a later one."""
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for worker, value, at in seen:
        by_worker.setdefault(worker, []).append((value, at))
    latencies, missing = [], 0
    for worker, value, at in accepted:
        shown = [t for v, t in by_worker.get(worker, []) if v >= value - 1e-9 and t >= at]
        if not shown:
            missing += 1
            continue
        latencies.append(min(shown) - at)
    return latencies, missing


# -- 1. latency to the DOM -----------------------------------------------------------------------


def iso_ms(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000


def bench_latency(
    browser: Any, url: str, page_url: str, workers: int, rate: float, log_rate: float, seconds: float
) -> dict[str, Any]:
    """Load through `url`, pages from `page_url` (another replica when they differ)."""
    load = Load(url, workers, rate, log_rate=log_rate)
    ids = in_thread(load.register())
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(page_url + "/?sort=name")
    page.wait_for_selector("#live-status[data-state=live]")
    page.evaluate(OBSERVE_CARDS)
    watched = machine(0)
    worker_context = browser.new_context(viewport={"width": 1400, "height": 1000})
    worker_page = worker_context.new_page()
    worker_page.goto(page_url + "/workers/" + ids[watched])
    worker_page.wait_for_selector("#live-status[data-state=live]")
    worker_page.evaluate(OBSERVE_LOG)
    in_thread(load.run(seconds))
    page.wait_for_timeout(1500)
    raw = page.evaluate("window.__seen")
    shown_lines = dict(worker_page.evaluate("window.__lines"))
    context.close()
    worker_context.close()
    watched_lines = [(text, at) for text, at in load.lines_accepted if text.startswith(watched + " ")]
    line_latencies = [shown_lines[text] - at for text, at in watched_lines if text in shown_lines]
    machine_of = {worker_id: m for m, worker_id in ids.items()}
    # Each update the DOM showed, against the moment the server received the message it shows
    # (the worker's lastSeen, rendered into the same card by the same push).
    shown = [at - iso_ms(received) for _w, text, at, received in raw if text.endswith("%") and received]
    # Each message sent, until the DOM showed it or a later value (coalescing skips some values).
    seen = [(machine_of[w], float(text.rstrip("%")), at) for w, text, at, _r in raw if text.endswith("%")]
    sent_to_dom, missing = match_latencies(load.sent, seen)
    return {
        "workers": workers,
        "messagesPerSecond": round(len(load.accepted) / seconds, 1),
        "logBatchesPerSecond": round(len(load.lines_accepted) / 3 / seconds, 1),
        "postRoundTripMs": summary(load.round_trips),
        "failedPosts": load.failures,
        "acceptedToDomMs": summary(shown),
        "sentToDomMs": summary(sent_to_dom),
        "neverShown": missing,
        "logLineAcceptedToDomMs": summary(line_latencies),
        "logLinesNeverShown": len(watched_lines) - len(line_latencies),
    }


# -- 2. rendering a worker with a million log lines ----------------------------------------------


def bulk_insert_logs(database: Path, worker_id: str, count: int) -> float:
    """Rows straight into SQLite, in GOLIAT's shape: batches of 10 lines, one sequence each."""
    started = time.perf_counter()
    conn = sqlite3.connect(database, timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    now = time.time() - count / 100
    kinds = [
        "progress",
        "info",
        "verbose",
        "success",
        "progress",
        "verbose",
        "progress",
        "info",
        "warning",
        "progress",
    ]
    batch = 50_000
    for start in range(0, count, batch):
        rows = [
            (
                worker_id,
                order_key(now + i / 100, i // 10),
                now + i / 100,
                kinds[i % 10],
                f"  - Simulation {i // 400}: step {i} of the voxeler, phantom thelonious at 700 MHz",
            )
            for i in range(start, min(count, start + batch))
        ]
        conn.executemany(
            "INSERT INTO log_lines (worker_id, ord, ts, log_type, message) VALUES (?, ?, ?, ?, ?)", rows
        )
        conn.commit()
    conn.execute("UPDATE workers SET log_newest = ? WHERE id = ?", (now + (count - 1) / 100, worker_id))
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    # What the server's log indexer would have done as the lines arrived (one bulk transaction).
    engine = create_engine(f"sqlite:///{database}", connect_args={"timeout": 60})
    search_index.index_all(engine)
    engine.dispose()
    return time.perf_counter() - started


def timed_gets(client: httpx.Client, path: str, repeat: int) -> list[float]:
    client.get(path)  # warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return times


def bench_render(data_dir: Path, lines: int, repeat: int) -> dict[str, Any]:
    with run_server(data_dir) as (url, _process):
        with httpx.Client(base_url=url, timeout=60) as client:
            client.post("/api/heartbeat", json={"machineId": "10.9.9.9", "hostname": "chatty"})
            worker_id = client.get("/api/workers").json()[0]["id"]
        insert_s = bulk_insert_logs(data_dir / "goliat-monitor.sqlite3", worker_id, lines)
        with httpx.Client(base_url=url, timeout=60) as client:
            page = timed_gets(client, f"/workers/{worker_id}", repeat)
            html = client.get(f"/workers/{worker_id}").text
            api = timed_gets(client, f"/api/workers/{worker_id}", repeat)
            middle = f"{(lines // 20) << 12}.{lines // 2}"
            deep = timed_gets(client, f"/api/workers/{worker_id}/logs?before={middle}&limit=200", repeat)
            oldest = timed_gets(
                client, f"/api/workers/{worker_id}/logs?before=4096.1000&limit=200", max(3, repeat // 5)
            )
            search = timed_gets(client, f"/api/workers/{worker_id}/logs?q=step%20999999", 3)
    return {
        "logLines": lines,
        "bulkInsertSeconds": round(insert_s, 1),
        "workerPageMs": summary(page),
        "workerPageBytes": len(html.encode()),
        "targetMs": RENDER_TARGET_MS,
        "meetsTarget": percentile(page, 50) < RENDER_TARGET_MS,
        "workerApiMs": summary(api),
        "pageBackFromMiddleMs": summary(deep),
        "pageBackToStartMs": summary(oldest),
        "fullTextSearchMs": summary(search),
    }


# -- 3. fan-out to 20 EventSource clients --------------------------------------------------------


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def raw_sse_clients(url: str, count: int, seconds: float) -> tuple[int, int]:
    """`count` bare EventSource-like readers (no browser): frames and bytes they received."""
    address = httpx.URL(url)
    totals = [0, 0]

    async def one() -> None:
        reader, writer = await asyncio.open_connection(address.host, address.port)
        writer.write(
            f"GET /api/events?workers=all HTTP/1.1\r\nHost: {address.host}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        stop = time.monotonic() + seconds
        try:
            while (left := stop - time.monotonic()) > 0:
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), left)
                except TimeoutError:
                    break
                if not chunk:
                    break
                totals[0] += chunk.count(b"event: worker")
                totals[1] += len(chunk)
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(count)))
    return totals[0], totals[1]


def bench_fanout(
    browser: Any, url: str, process: psutil.Process, workers: int, rate: float, seconds: float, clients: int
) -> dict[str, Any]:
    load = Load(url, workers, rate)
    in_thread(load.register())

    def phase(raw_clients: int = 0) -> dict[str, float]:
        load.accepted.clear()
        before, started = cpu_seconds(process), time.monotonic()

        async def run() -> tuple[int, int]:
            readers = asyncio.ensure_future(raw_sse_clients(url, raw_clients, seconds + 0.5))
            await load.run(seconds)
            return await readers if raw_clients else (0, 0)

        frames, size = in_thread(run())
        cpu = cpu_seconds(process) - before
        elapsed = time.monotonic() - started
        result = {
            "messagesPerSecond": round(len(load.accepted) / elapsed, 1),
            "serverCpuPercent": round(cpu / elapsed * 100, 1),
            "serverCpuMsPerMessage": round(cpu * 1000 / max(1, len(load.accepted)), 3),
        }
        if raw_clients:
            result["framesPerClientPerSecond"] = round(frames / raw_clients / elapsed, 1)
            result["bytesPerClientPerSecond"] = round(size / raw_clients / elapsed)
        return result

    def open_clients(count: int) -> list[Any]:
        opened = []
        for _ in range(count):
            context = browser.new_context()  # one per client: as many people, not tabs of one
            page = context.new_page()
            page.goto(url + "/static/favicon.svg")  # our origin, no page script: only the EventSource
            page.evaluate(OPEN_EVENTSOURCE)
            opened.append(page)
        return opened

    phases = {"0": phase(), f"{clients} bare sockets": phase(clients)}
    pages = open_clients(1)
    phases["1 browser"] = phase()
    pages += open_clients(clients - 1)
    for page in pages:
        page.evaluate("window.__got = []; window.__bytes = 0")
    phases[f"{clients} browsers"] = phase()
    time.sleep(1)
    frames, latencies, total_bytes = [], [], 0
    for page in pages:
        got = page.evaluate("window.__got")
        total_bytes += page.evaluate("window.__bytes")
        frames.append(len(got))
        latencies += [at - iso_ms(seen) for _w, _p, at, seen in got if seen]
        page.context.close()
    base, bare, full = phases["0"], phases[f"{clients} bare sockets"], phases[f"{clients} browsers"]
    return {
        "clients": clients,
        "workers": workers,
        "phases": phases,
        "extraCpuMsPerMessagePerClient": round(
            (full["serverCpuMsPerMessage"] - base["serverCpuMsPerMessage"]) / clients, 4
        ),
        "extraCpuMsPerMessagePerBareClient": round(
            (bare["serverCpuMsPerMessage"] - base["serverCpuMsPerMessage"]) / clients, 4
        ),
        "framesPerClientPerSecond": round(statistics.mean(frames) / seconds, 1),
        "bytesPerClientPerSecond": round(total_bytes / clients / seconds),
        "acceptedToClientMs": summary(latencies),
    }


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--only", choices=["latency", "render", "fanout"], action="append")
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=2.0, help="progress messages per second per worker")
    parser.add_argument(
        "--log-rate", type=float, default=1.0, help="log batches per second per worker (latency part)"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="latency part only: `postgres` for a scratch database on the local PostgreSQL (two replicas,"
        " pages on the one that does not take the load). Default: SQLite, one server.",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each load phase")
    parser.add_argument("--clients", type=int, default=20, help="EventSource clients for the fan-out")
    parser.add_argument("--log-lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    parts = args.only or ["latency", "render", "fanout"]
    if args.database_url not in (None, "postgres"):
        parser.error("--database-url takes only `postgres` (a scratch database)")
    if args.database_url and set(parts) != {"latency"}:
        parser.error("--database-url goes with --only latency")
    if not Path(CHROMIUM).exists() and {"latency", "fanout"} & set(parts):
        sys.exit(f"{CHROMIUM} is missing: apt-get install chromium")

    from playwright.sync_api import sync_playwright

    results: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "database": "postgresql, 2 replicas" if args.database_url else "sqlite",
    }
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        if "render" in parts:
            results["render"] = bench_render(Path(tmp) / "render", args.log_lines, args.repeat)
        if "latency" in parts:
            latency = (args.workers, args.rate, args.log_rate, args.seconds)
            if args.database_url:
                with (
                    scratch_postgres() as database,
                    run_server(Path(tmp) / "writer", database) as (url, _writer),
                    run_server(Path(tmp) / "reader", database) as (page_url, _reader),
                ):
                    results["latency"] = bench_latency(browser, url, page_url, *latency)
            else:
                with run_server(Path(tmp) / "latency") as (url, _process):
                    results["latency"] = bench_latency(browser, url, url, *latency)
        if "fanout" in parts:
            with run_server(Path(tmp) / "fanout") as (url, process):
                results["fanout"] = bench_fanout(
                    browser, url, process, args.workers, args.rate, args.seconds, args.clients
                )
        browser.close()

    if args.json:
        print(json.dumps(results, indent=2))
        return
    if "latency" in results:
        r = results["latency"]
        print(
            f"message -> browser DOM ({r['workers']} workers, {r['messagesPerSecond']} progress msg/s"
            f" + {r['logBatchesPerSecond']} log batches/s, {results['database']}, failed posts {r['failedPosts']}):"
        )
        for key, label in (
            ("acceptedToDomMs", "server received -> DOM"),
            ("sentToDomMs", "client sent -> DOM"),
            ("postRoundTripMs", "POST round trip"),
            ("logLineAcceptedToDomMs", "log line 200 -> console"),
        ):
            lat = r[key]
            print(
                f"  {label:<24} p50 {lat['p50']:>8} ms  p90 {lat['p90']:>8} ms  p99 {lat['p99']:>8} ms  (n={lat['n']})"
            )
        print(f"  messages superseded before any push showed them: {r['neverShown']}")
        print(f"  log lines of the watched worker never shown: {r['logLinesNeverShown']}")
    if "render" in results:
        r = results["render"]
        print(f"worker page with {r['logLines']:,} log lines (bulk insert {r['bulkInsertSeconds']} s):")
        for key, label in (
            ("workerPageMs", "GET /workers/{id}"),
            ("workerApiMs", "GET /api/workers/{id}"),
            ("pageBackFromMiddleMs", "logs?before= (middle)"),
            ("pageBackToStartMs", "logs?before= (start)"),
            ("fullTextSearchMs", "logs?q= (log index)"),
        ):
            s = r[key]
            print(f"  {label:<24} p50 {s['p50']:>8} ms  p99 {s['p99']:>8} ms")
        print(
            f"  target < {r['targetMs']:.0f} ms: {'met' if r['meetsTarget'] else 'MISSED'}; page is {r['workerPageBytes']:,} bytes"
        )
    if "fanout" in results:
        r = results["fanout"]
        print(f"SSE fan-out ({r['workers']} workers sending):")
        for count, p in r["phases"].items():
            print(
                f"  {count:>16}: {p['messagesPerSecond']} msg/s, server CPU {p['serverCpuPercent']}%"
                f" = {p['serverCpuMsPerMessage']} ms per message"
            )
        lat = r["acceptedToClientMs"]
        print(
            f"  each of {r['clients']} clients: {r['framesPerClientPerSecond']} frames/s, {r['bytesPerClientPerSecond']:,} bytes/s;"
            f" server received -> client p50 {lat['p50']} ms p99 {lat['p99']} ms;"
            f" extra server CPU {r['extraCpuMsPerMessagePerClient']} ms per message per client"
            f" ({r['extraCpuMsPerMessagePerBareClient']} with bare sockets)"
        )


if __name__ == "__main__":
    main()
