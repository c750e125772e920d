"""What `GET /metrics` costs: ingest with and without a Prometheus scraper, and one observation.

Starts `goliat-monitor serve` (bench/ingest.py's machinery: the same subprocess server, simulated
GOLIAT bridges, open-loop schedule and latency counted from the schedule), stores a campaign
history for the database gauges to read (a super study of `--history` assignments, each with a
claim and an ending event), then plays the same ingest load in alternating windows without and
with a scraper that asks `/metrics` every `--scrape-interval` seconds, and prints p50/p99 and
throughput for both. First it times, in this process, what the hot path pays per message and
per request for being counted (plain ints and the bisect histogram against prometheus_client's
own Counter and Histogram).

    .venv/bin/python bench/metrics.py                          # SQLite, 4 windows of 30 s
    .venv/bin/python bench/metrics.py --database-url postgres  # a scratch PostgreSQL database
    .venv/bin/python bench/metrics.py --duration 3 --rounds 1 --json   # a smoke run

See bench/README.md ("bench/metrics.py") for what the figures mean.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import tempfile
import time
import timeit
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, insert

from goliat_monitor.db.tables import assignment_events, assignments, super_studies
from goliat_monitor.server.counters import IngestCounters, RequestTimes
from ingest import (  # the benchmark beside this one
    HEARTBEAT,
    HEARTBEAT_S,
    LOG_BATCH_HZ,
    PROGRESS,
    PROGRESS_HZ,
    Bridge,
    Connection,
    DatabaseTarget,
    Requests,
    Server,
    StepResult,
    Ui,
    call,
    percentile,
    run_step,
    running_server,
    settle,
    step_line,
    stratified_phases,
)


@dataclass
class Args:
    database_url: str | None
    duration: float
    rounds: int
    rate: float
    bridges: int
    scrape_interval: float
    history: int
    json: bool


# -- what one observation costs, in this process ----------------------------------------------


def micro_benchmark(number: int = 200_000) -> dict[str, float]:
    """Nanoseconds per call: the server's plain counters and histogram, and prometheus_client's."""
    counts = IngestCounters()
    times = RequestTimes()
    registry = CollectorRegistry()
    counter = Counter("bench_messages", "messages", ["kind"], registry=registry)
    histogram = Histogram("bench_duration_seconds", "durations", ["method", "route"], registry=registry)
    child_counter = counter.labels("gui_update")

    def plain_count() -> None:
        counts.gui_updates += 1
        counts.log_lines += 10

    def clock_pair() -> None:  # what the request timer reads per request
        time.perf_counter()
        time.perf_counter()

    def ns(fn: Callable[[], None]) -> float:
        return round(min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e9, 1)

    return {
        "count_plain_ns": ns(plain_count),
        "count_prometheus_ns": ns(lambda: child_counter.inc()),
        "count_prometheus_labels_ns": ns(lambda: counter.labels("gui_update").inc()),
        "observe_plain_ns": ns(lambda: times.observe("POST", "/api/gui-update", 0.0012)),
        "observe_prometheus_ns": ns(lambda: histogram.labels("POST", "/api/gui-update").observe(0.0012)),
        "timer_clock_pair_ns": ns(clock_pair),
    }


# -- the campaign the gauges read --------------------------------------------------------------


def store_history(database_url: str, count: int) -> None:
    """A completed super study of `count` assignments, each claimed and finished an hour later."""
    if count <= 0:
        return
    engine = create_engine(
        database_url, connect_args={"timeout": 60} if database_url.startswith("sqlite") else {}
    )
    now = time.time()
    study = str(uuid.uuid4())
    rows = [
        {
            "id": str(uuid.uuid4()),
            "super_study_id": study,
            "index": i,
            "status": "COMPLETED",
            "split_config": {"frequencies_mhz": [700 + i]},
            "size": 1,
            "progress": 100.0,
            "started_at": now - 7200 + i,
            "completed_at": now - 3600 + i,
            "created_at": now - 7200,
            "updated_at": now - 3600 + i,
        }
        for i in range(count)
    ]
    events = []
    for row in rows:
        claimed = {"assignment_id": row["id"], "actor": "bench", "worker_id": None, "reason": "bench"}
        events.append({**claimed, "ts": row["started_at"], "from_status": "PENDING", "to_status": "RUNNING"})
        events.append(
            {**claimed, "ts": row["completed_at"], "from_status": "RUNNING", "to_status": "COMPLETED"}
        )
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(super_studies).values(
                    id=study, name=f"bench-history-{study[:8]}", created_at=now - 7200, updated_at=now
                )
            )
            for at in range(0, count, 5000):
                conn.execute(insert(assignments), rows[at : at + 5000])
            for at in range(0, len(events), 10000):
                conn.execute(insert(assignment_events), events[at : at + 10000])
    finally:
        engine.dispose()


# -- the scraper ---------------------------------------------------------------------------------


@dataclass
class Scrapes:
    count: int = 0
    failures: int = 0
    bytes: int = 0
    latencies_ms: list[float] | None = None


async def scraper(port: int, interval: float, stop: asyncio.Event, scrapes: Scrapes) -> None:
    """GET /metrics every `interval` seconds, on a connection of its own, as Prometheus does."""
    raw = Requests(port).get("/metrics")
    connection = Connection(port)
    scrapes.latencies_ms = []
    loop = asyncio.get_running_loop()
    try:
        while not stop.is_set():
            t0 = loop.time()
            try:
                status, body = await connection.request(raw)
            except Exception:
                status, body = 0, b""
            if status == 200:
                scrapes.count += 1
                scrapes.bytes = len(body)
                scrapes.latencies_ms.append((loop.time() - t0) * 1000)
            else:
                scrapes.failures += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
    finally:
        connection.close()


# -- the run -------------------------------------------------------------------------------------


async def measure(args: Args, server: Server, ui: Ui) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    requests = Requests(server.port)
    rng = random.Random(20261202)
    phases = zip(*(stratified_phases(args.bridges, rng) for _ in range(3)), strict=True)
    bridges = [Bridge(i, requests, rng, phases=p) for i, p in enumerate(phases)]
    ui.status("registering bridges")
    await asyncio.gather(*(call(b.connection, b.message(HEARTBEAT)) for b in bridges))
    now = loop.time()
    for b in bridges:
        b.next_heartbeat = now + HEARTBEAT_S * b.heartbeat_phase
    factor = (args.rate - args.bridges / HEARTBEAT_S) / (args.bridges * (PROGRESS_HZ + LOG_BATCH_HZ))
    probes = [(b.connection, (lambda b=b: b.message(PROGRESS))) for b in bridges]

    async def window(duration: float, scrape: bool) -> tuple[StepResult, Scrapes]:
        start = loop.time() + 0.05
        lanes = [(b.connection, b.message, b.schedule(start, duration, factor)) for b in bridges]
        scrapes = Scrapes()
        stop = asyncio.Event()
        task = (
            asyncio.create_task(scraper(server.port, args.scrape_interval, stop, scrapes)) if scrape else None
        )
        result = await run_step(lanes, start=start, duration=duration, server=server, ui=ui)
        stop.set()
        if task is not None:
            await task
        await settle(probes)
        return result, scrapes

    ui.status("warm-up", total=1.0)
    await window(min(3.0, args.duration), scrape=True)
    results: dict[str, list[StepResult]] = {"without": [], "with": []}
    scrape_ms: list[float] = []
    scrape_count = scrape_failures = scrape_bytes = 0
    ui.print(
        f"[bold]ingest at {args.rate:,.0f}/s from {args.bridges} bridges[/], windows of {args.duration:g} s"
    )
    ui.print(
        "  " + "scraper".ljust(9) + " got/s   p50 ms   p99 ms  errors  late  cpu server/db/gen  db ms/req"
    )
    for round_ in range(args.rounds):
        # Alternate the order, so a machine that warms up or slows down over time favours neither.
        order = (False, True) if round_ % 2 == 0 else (True, False)
        for scrape in order:
            ui.status(
                f"round {round_ + 1}/{args.rounds}: {'with' if scrape else 'without'} scraper", total=1.0
            )
            result, scrapes = await window(args.duration, scrape)
            results["with" if scrape else "without"].append(result)
            ui.print(step_line("with" if scrape else "without", result))
            if scrape:
                scrape_ms.extend(scrapes.latencies_ms or [])
                scrape_count += scrapes.count
                scrape_failures += scrapes.failures
                scrape_bytes = scrapes.bytes or scrape_bytes
    for b in bridges:
        b.connection.close()
    ordered = sorted(scrape_ms)
    return {
        "without": summarize(results["without"]),
        "with": summarize(results["with"]),
        "scrapes": scrape_count,
        "scrape_failures": scrape_failures,
        "scrape_bytes": scrape_bytes,
        "scrape_p50_ms": _round(percentile(ordered, 0.5)),
        "scrape_max_ms": _round(ordered[-1] if ordered else None),
        "windows": {k: [asdict(s) for s in v] for k, v in results.items()},
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def summarize(steps: Sequence[StepResult]) -> dict[str, Any]:
    """The windows of one kind together: medians of their p50/p99, summed throughput."""

    def median(values: list[float]) -> float | None:
        ordered = sorted(values)
        return percentile(ordered, 0.5) if ordered else None

    return {
        "messages_per_s": round(sum(s.achieved_per_s for s in steps) / max(1, len(steps)), 1),
        "p50_ms": median([s.p50_ms for s in steps if s.p50_ms is not None]),
        "p99_ms": median([s.p99_ms for s in steps if s.p99_ms is not None]),
        "worst_p99_ms": max((s.p99_ms for s in steps if s.p99_ms is not None), default=None),
        "errors": sum(s.errors + s.timeouts for s in steps),
        "server_cpu_pct": median([s.server_cpu_pct for s in steps]),
    }


async def run(args: Args, ui: Ui) -> dict[str, Any]:
    target = DatabaseTarget(args.database_url)
    out: dict[str, Any] = {"database": target.name, "rate": args.rate, "bridges": args.bridges}
    ui.status("micro-benchmark")
    out["micro"] = micro_benchmark()
    workdir = Path(tempfile.mkdtemp(prefix="gm-bench-metrics-"))
    try:
        with target.database() as url, running_server(url, workdir / "server") as server:
            ui.status(f"storing a campaign history of {args.history} assignments")
            store_history(server.database_url, args.history)
            out.update(await measure(args, server, ui))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def summary_table(results: dict[str, Any]) -> Table:
    table = Table(
        title=f"/metrics scraped every 5 s vs not ({results['database']}, {results['rate']:,.0f}/s)"
    )
    table.add_column("figure")
    table.add_column("without", justify="right")
    table.add_column("with scraper", justify="right")
    for key in ("messages_per_s", "p50_ms", "p99_ms", "worst_p99_ms", "errors", "server_cpu_pct"):
        table.add_row(key, str(results["without"][key]), str(results["with"][key]))
    micro = results["micro"]
    table.caption = (
        f"{results['scrapes']} scrapes ({results['scrape_failures']} failed), {results['scrape_bytes']} bytes, "
        f"p50 {results['scrape_p50_ms']} ms, max {results['scrape_max_ms']} ms. Per call: count "
        f"{micro['count_plain_ns']} ns (prometheus_client {micro['count_prometheus_ns']} ns), histogram "
        f"{micro['observe_plain_ns']} ns (prometheus_client {micro['observe_prometheus_ns']} ns)"
    )
    return table


def parse_args(argv: Sequence[str] | None = None) -> Args:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=None,
        help="`postgres` for a scratch database on the local PostgreSQL, or an empty database's URL. "
        "Default: SQLite in a temp data dir.",
    )
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per window (default 30)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="pairs of windows, without and with (default 2)"
    )
    parser.add_argument(
        "--rate", type=float, default=1500.0, help="ingest messages per second (default 1500)"
    )
    parser.add_argument("--bridges", type=int, default=100, help="simulated GOLIAT bridges (default 100)")
    parser.add_argument(
        "--scrape-interval", type=float, default=5.0, help="seconds between scrapes (default 5)"
    )
    parser.add_argument(
        "--history",
        type=int,
        default=5000,
        help="assignments (2 events each) stored beforehand (default 5000)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ns = parser.parse_args(argv)
    if not 0 < ns.duration <= 600:
        parser.error("--duration must be in (0, 600] seconds")
    if not 1 <= ns.rounds <= 20:
        parser.error("--rounds must be in [1, 20]")
    if not 1 <= ns.bridges <= 2000 or ns.rate <= ns.bridges / HEARTBEAT_S:
        parser.error("--bridges must be in [1, 2000] and --rate above their heartbeats")
    return Args(
        ns.database_url, ns.duration, ns.rounds, ns.rate, ns.bridges, ns.scrape_interval, ns.history, ns.json
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=args.json)
    ui = Ui(console)
    try:
        with ui.progress:
            results = asyncio.run(run(args, ui))
    except RuntimeError as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}")
        return 1
    if args.json:
        print(json.dumps(results))
    else:
        console.print(summary_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
