"""Benchmark retention: ingest latency while the server prunes 1,000,000 old log lines.

Runs `goliat-monitor serve` as a subprocess (fresh temp data dir, or a scratch PostgreSQL
database), drives `--bridges` GOLIAT bridges at GOLIAT's own rates over real HTTP (bench/ingest.py's
load generator and server runner), and measures ingest latency twice:

1. without pruning: `--lines` log lines stamped ten days ago are bulk-loaded in one transaction
   (SQLite: indexed in the same transaction, as the server's indexer would have done long ago),
   then the fleet runs for `--duration` seconds on a server without retention;
2. during pruning: a server with `--keep-logs-days 1` (a pass every 6 s) takes over the same database, and the same
   load goes on until its retention passes have deleted the last of the old lines.

Prints p50/p99 of both phases, the errors, and the pruning rate (lines deleted per second, from
the first deleted line to the last).

    .venv/bin/python bench/retention.py                            # SQLite, 1,000,000 lines
    .venv/bin/python bench/retention.py --database-url postgres    # a scratch PostgreSQL database
    .venv/bin/python bench/retention.py --lines 20000 --duration 3 --json   # a smoke run

See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import text

from goliat_monitor.db import search_index
from goliat_monitor.domain.gui_state import KEY_MARK, TIME_ORIGIN
from ingest import (  # the benchmark beside this one
    HEARTBEAT,
    MS_STEP,
    POSTGRES_LOAD,
    SQLITE_LOAD,
    Bridge,
    Counters,
    Requests,
    Ui,
    _drive,
    _engine,
    call,
    percentile,
    register,
    running_server,
    scratch_postgres,
    stratified_phases,
)

DAY_S = 86400.0
CHUNK_S = 2.0
"""Load is scheduled in chunks of this many seconds while the pruning runs."""
PRUNE_TIMEOUT_S = 1800.0
SERVER_ARGS = ("--keep-logs-days", "1", "--prune-interval-s", "6")
"""The first pass starts 5-7 s after the server: after the warm-up, inside the measured load."""
WARMUP_S = 3.0


def load_old_lines(url: str, worker_id: str, n: int) -> tuple[int, int]:
    """`n` lines of `worker_id` stamped ten days ago, in one transaction; returns their id range."""
    engine = _engine(url)
    sqlite = url.startswith("sqlite")
    t0 = float(int(time.time() - 10 * DAY_S - n * 0.125))
    params = {
        "worker": worker_id,
        "n": n,
        "t0": t0,
        "t0_ms": int((t0 - TIME_ORIGIN) * 1000),
        "mark": KEY_MARK,
        "ms_step": MS_STEP,
    }
    try:
        with engine.begin() as conn:
            if sqlite:
                conn.exec_driver_sql("PRAGMA busy_timeout=60000")
            conn.execute(text(SQLITE_LOAD if sqlite else POSTGRES_LOAD), params)
            low, high = conn.execute(
                text("SELECT min(id), max(id) FROM log_lines WHERE worker_id = :w"), {"w": worker_id}
            ).one()
            if sqlite:  # what the server's indexer did long ago; the pruning pays the index's share
                search_index.index_new_lines(conn, None)
        if not sqlite:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE log_lines"))
    finally:
        engine.dispose()
    return int(low), int(high)


def remaining(url: str, low: int, high: int) -> int:
    """Old lines left: the walk deletes by id from the bottom, so this is one index seek."""
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            first = conn.execute(
                text("SELECT min(id) FROM log_lines WHERE id >= :low AND id <= :high"),
                {"low": low, "high": high},
            ).scalar()
    finally:
        engine.dispose()
    return 0 if first is None else high - int(first) + 1


async def drive(bridges: list[Bridge], duration: float, counters: Counters) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    lanes = [(b.connection, b.message, b.schedule(start, duration, 1.0)) for b in bridges]
    await asyncio.gather(*(_drive(conn, make, events, counters) for conn, make, events in lanes))


def figures(counters: Counters, seconds: float) -> dict[str, Any]:
    ordered = sorted(counters.latencies)
    p50, p99 = percentile(ordered, 0.5), percentile(ordered, 0.99)
    return {
        "requests": len(ordered),
        "requests_per_s": round(len(ordered) / seconds, 1) if seconds else 0.0,
        "p50_ms": None if p50 is None else round(p50 * 1000, 2),
        "p99_ms": None if p99 is None else round(p99 * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2) if ordered else None,
        "errors": dict(counters.errors),
    }


async def run(args: argparse.Namespace, ui: Ui, url: str | None, workdir: Path) -> dict[str, Any]:
    # 1. A server without retention: the old lines first (a campaign's history is stored in time
    #    order, so the oldest lines have the lowest ids), then the fleet, and the quiet baseline.
    with running_server(url, workdir / "before") as server:
        database_url = server.database_url
        requests = Requests(server.port)
        ui.status(f"bulk-loading {args.lines:,} lines stamped ten days ago")
        worker = (await register(requests, ["bench-retention-old"]))["bench-retention-old"]
        low, high = await asyncio.to_thread(load_old_lines, database_url, worker, args.lines)
        rng = random.Random(20261202)
        phases = zip(*(stratified_phases(args.bridges, rng) for _ in range(3)), strict=True)
        bridges = [Bridge(i, requests, rng, phases=p) for i, p in enumerate(phases)]
        ui.status("registering bridges")
        await asyncio.gather(*(call(b.connection, b.message(HEARTBEAT)) for b in bridges))
        await drive(bridges, WARMUP_S, Counters())
        ui.status(f"ingest without pruning ({args.duration:g} s)", total=None)
        quiet = Counters()
        t0 = time.monotonic()
        await drive(bridges, args.duration, quiet)
        without = figures(quiet, time.monotonic() - t0)
        for b in bridges:
            b.connection.close()

    # 2. The same database under a server with retention: its first pass starts within a second.
    with running_server(database_url, workdir / "after", SERVER_ARGS) as server:
        requests = Requests(server.port)
        for b in bridges:
            b.requests = requests
            b.connection = type(b.connection)(server.port)
        ui.status("warm-up of the new server")
        await drive(bridges, WARMUP_S, Counters())
        ui.status("ingest while the server prunes", total=args.lines)
        busy = Counters()
        t0 = time.monotonic()
        first_deleted = last_deleted = None
        left = args.lines
        while left:
            if time.monotonic() - t0 > PRUNE_TIMEOUT_S:
                raise RuntimeError(f"pruning did not finish in {PRUNE_TIMEOUT_S:.0f} s ({left:,} lines left)")
            chunk = asyncio.create_task(drive(bridges, CHUNK_S, busy))
            while not chunk.done():
                await asyncio.sleep(0.25)
                now_left = await asyncio.to_thread(remaining, database_url, low, high)
                if now_left < left:
                    first_deleted = first_deleted or time.monotonic()
                    last_deleted = time.monotonic()
                left = now_left
                ui.progress.update(ui.task, completed=args.lines - left)
            await chunk
        during = figures(busy, time.monotonic() - t0)
        for b in bridges:
            b.connection.close()
    prune_s = (last_deleted or 0.0) - (first_deleted or 0.0)
    return {
        "database": "sqlite" if url is None else "postgresql",
        "bridges": args.bridges,
        "lines": args.lines,
        "without_pruning": without,
        "during_pruning": during,
        "pruned_lines": args.lines,
        "prune_s": round(prune_s, 2),
        "pruned_lines_per_s": round(args.lines / prune_s) if prune_s > 0 else None,
    }


@contextlib.contextmanager
def database(option: str | None) -> Iterator[str | None]:
    if option == "postgres":
        with scratch_postgres() as url:
            yield url
    else:
        yield option


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url", default=None, help="`postgres` for a scratch PostgreSQL database")
    parser.add_argument(
        "--lines", type=int, default=1_000_000, help="old log lines to prune (default 1,000,000)"
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of the no-pruning phase")
    parser.add_argument(
        "--bridges", type=int, default=100, help="GOLIAT bridges at GOLIAT's rates (default 100)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ns = parser.parse_args(argv)
    if ns.lines < 1 or ns.duration <= 0 or not 1 <= ns.bridges <= 2000:
        parser.error("--lines >= 1, --duration > 0 and --bridges in [1, 2000]")
    return ns


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=args.json)
    ui = Ui(console)
    workdir = Path(tempfile.mkdtemp(prefix="gm-bench-retention-"))
    try:
        with ui.progress, database(args.database_url) as url:
            results = asyncio.run(run(args, ui, url, workdir))
    except RuntimeError as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}")
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(results))
        return 0
    w, d = results["without_pruning"], results["during_pruning"]
    console.print(f"[bold]retention benchmark[/] ({results['database']}, {results['bridges']} bridges)")
    console.print(
        f"  ingest without pruning: p50 {w['p50_ms']} ms, p99 {w['p99_ms']} ms, {w['requests_per_s']}/s, errors {w['errors']}"
    )
    console.print(
        f"  ingest during pruning:  p50 {d['p50_ms']} ms, p99 {d['p99_ms']} ms, {d['requests_per_s']}/s, errors {d['errors']}"
    )
    console.print(
        f"  pruned {results['pruned_lines']:,} lines in {results['prune_s']} s: {results['pruned_lines_per_s']} lines/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
