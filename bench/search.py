"""Benchmark log search: one worker's log and every worker's, over a million stored lines.

Starts `goliat-monitor serve` as a subprocess (fresh temp data dir, or a scratch PostgreSQL
database), registers `--workers` workers through the API, bulk-loads `--lines` GOLIAT-like log
lines spread over them straight into `log_lines` (interleaved by time, as a fleet sends them),
indexes them as the server's indexer would have (SQLite; PostgreSQL's GIN index fills as rows go
in, then `ANALYZE`), sends a few live batches through the API so the newest lines are still above
the SQLite indexer's mark, and times sequential searches over HTTP:

- cross-worker `GET /api/logs?q=`: a rare term, a common term, a text with no hit, and a text
  with no hit made of common trigrams;
- per-worker `GET /api/workers/{id}/logs?q=`: the same for one worker, and a term common in the
  other workers but absent from this one (the worst case of a newest-first index scan).

    .venv/bin/python bench/search.py                            # SQLite, 1,000,000 lines
    .venv/bin/python bench/search.py --database-url postgres    # a scratch PostgreSQL database
    .venv/bin/python bench/search.py --lines 20000 --json       # a quick check, one JSON object

Target: p50 < 50 ms for every search. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from goliat_monitor.db import search_index
from goliat_monitor.domain.gui_state import KEY_MARK, TIME_ORIGIN
from goliat_monitor.settings import normalize_database_url
from ingest import free_port, scratch_postgres  # the benchmark beside this one

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # the only host this benchmark ever sends to
TARGET_P50_MS = 50.0
MS_STEP = 1 << 21  # one millisecond in order-key units (see domain.gui_state.order_key)
RARE_EVERY = 99_991  # about 10 rare lines per million

QUERIES = {
    "rare": "cuda_error_out_of_memory",
    "common": "Power balance",
    "no_hit": "xylophone quartz",
    "no_hit_common_trigrams": "Power balance off by 99",
}
ABSENT_HERE = "Steady state"
"""Common in every worker but the quiet one (worker 0), which only logs heartbeats."""

# One GOLIAT-like line per i % 10 (k is the worker's own line number); worker 0 is the quiet one.
MESSAGE_SQL = f"""
CASE
  WHEN i % {RARE_EVERY} = 4321 THEN 'ERROR: CUDA_ERROR_OUT_OF_MEMORY while allocating ' || (k % 16) || ' GB on GPU 0'
  WHEN w.n = 0 THEN 'Idle: waiting for an assignment (' || k || ')'
  WHEN k % 10 = 0 THEN '--- Simulation ' || (k / 400 % 36 + 1) || '/36: thelonious, ' || (700 + k % 9 * 100)
                       || ' MHz, environmental_x_pos_theta ---'
  WHEN k % 10 = 1 THEN '  - Setting up simulation...'
  WHEN k % 10 = 2 THEN '    - Voxelizing phantom (grid step 1.2 mm, ' || (k % 90 + 10) || '.1 M cells)...'
  WHEN k % 10 = 3 THEN '    - Done in ' || (k % 60) || '.21s'
  WHEN k % 10 = 4 THEN '  - Running iSolve (FDTD, CUDA)...'
  WHEN k % 10 = 5 THEN '    - Time step ' || (k * 7 % 48000) || '/48000 (25.0 %), 38.2 Mcells/s'
  WHEN k % 10 = 6 THEN '    - Steady state not reached yet, continuing'
  WHEN k % 10 = 7 THEN '  - Extracting SAR statistics...'
  WHEN k % 10 = 8 THEN '    - psSAR10g (head): 0.0' || (k % 900 + 100) || ' W/kg'
  ELSE '    - Power balance off by ' || (k % 10) || '.' || (k % 7) || ' %'
END
"""
TYPE_SQL = f"""
CASE WHEN i % {RARE_EVERY} = 4321 THEN 'error' WHEN w.n = 0 THEN 'info'
     WHEN k % 10 = 9 THEN 'warning' WHEN k % 10 = 0 THEN 'header' ELSE 'info' END
"""

SQLITE_LOAD = f"""
WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < :n)
INSERT INTO log_lines (worker_id, ord, ts, log_type, message)
SELECT w.id, :mark + (:t0_ms + (i / :workers) * 125) * :ms_step + (i / :workers) / 10 % :ms_step,
       :t0 + (i / :workers) * 0.125, {TYPE_SQL}, {MESSAGE_SQL}
FROM (SELECT i, i / :workers AS k FROM seq) AS s JOIN bench_workers w ON w.n = s.i % :workers
ORDER BY i
"""

POSTGRES_LOAD = f"""
INSERT INTO log_lines (worker_id, ord, ts, log_type, message)
SELECT w.id, CAST(:mark AS bigint) + (CAST(:t0_ms AS bigint) + k * 125) * CAST(:ms_step AS bigint) + k / 10,
       CAST(:t0 AS double precision) + k * 0.125, {TYPE_SQL}, {MESSAGE_SQL}
FROM (SELECT i, i / CAST(:workers AS integer) AS k FROM generate_series(0, CAST(:n AS integer) - 1) AS g(i)) AS s
JOIN bench_workers w ON w.n = s.i % CAST(:workers AS integer)
ORDER BY i
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


@contextlib.contextmanager
def running_server(database_url: str | None, data_dir: Path) -> Iterator[str]:
    """`goliat-monitor serve` in a subprocess with its default settings; stopped on exit."""
    port = free_port()
    command = [sys.executable, "-m", "goliat_monitor", "serve", "--host", HOST, "--port", str(port)]
    command += ["--data-dir", str(data_dir)]
    if database_url:
        command += ["--database-url", database_url]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOLIAT_MONITOR_") and k != "DATABASE_URL"}
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        url = f"http://{HOST}:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"server exited: {log_path.read_text(errors='replace')[-2000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server not healthy after 60 s; see {log_path}")
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"timeout": 60})
    return create_engine(url)


def fill(url: str, worker_ids: list[str], lines: int) -> dict[str, float]:
    """Bulk-load `lines` lines over the workers, interleaved by time; then index or analyse them."""
    engine = _engine(url)
    sqlite = url.startswith("sqlite")
    seconds: dict[str, float] = {}
    try:
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text("CREATE TEMPORARY TABLE bench_workers (n INTEGER PRIMARY KEY, id VARCHAR(36))"))
            conn.execute(
                text("INSERT INTO bench_workers (n, id) VALUES (:n, :id)"),
                [{"n": n, "id": worker_id} for n, worker_id in enumerate(worker_ids)],
            )
            t0 = float(int(time.time() - lines / len(worker_ids) * 0.125 - 3600))
            params = {
                "n": lines,
                "workers": len(worker_ids),
                "t0": t0,
                "t0_ms": int((t0 - TIME_ORIGIN) * 1000),
                "mark": KEY_MARK,
                "ms_step": MS_STEP,
            }
            conn.execute(text(SQLITE_LOAD if sqlite else POSTGRES_LOAD), params)
        seconds["load_s"] = time.perf_counter() - started
        started = time.perf_counter()
        if sqlite:
            search_index.index_all(engine)  # what the server's indexer does as lines arrive
        else:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE log_lines"))  # what autovacuum does soon after
        seconds["index_s"] = time.perf_counter() - started
    finally:
        engine.dispose()
    return seconds


def timed(client: httpx.Client, path: str, params: dict[str, Any], repeat: int) -> dict[str, Any]:
    for _ in range(2):  # warm the caches and the connection
        client.get(path, params=params).raise_for_status()
    times = []
    hits = 0
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path, params=params)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        hits = len(response.json()["logs"])
    return {
        "p50_ms": round(percentile(times, 50), 2),
        "p99_ms": round(percentile(times, 99), 2),
        "hits": hits,
    }


def run(database_url: str | None, lines: int, workers: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gm-search-bench-") as tmp:
        data_dir = Path(tmp)
        with running_server(database_url, data_dir) as url, httpx.Client(base_url=url, timeout=120) as client:
            for n in range(workers):
                machine = f"10.2.{n // 250}.{n % 250 + 1}"
                client.post(
                    "/api/heartbeat", json={"machineId": machine, "hostname": f"bench-{n}"}
                ).raise_for_status()
            ids = {w["hostname"]: w["id"] for w in client.get("/api/workers").json()}
            worker_ids = [ids[f"bench-{n}"] for n in range(workers)]
            db_url = normalize_database_url(
                database_url or f"sqlite:///{data_dir / 'goliat-monitor.sqlite3'}"
            )
            result: dict[str, Any] = {"database": "sqlite" if database_url is None else "postgresql"}
            result.update(lines=lines, workers=workers, repeat=repeat)
            result.update({k: round(v, 1) for k, v in fill(db_url, worker_ids, lines).items()})
            # A few live batches through the API: on SQLite the newest lines sit above the mark.
            for seq in range(5):
                batch = [
                    {
                        "type": "status",
                        "message": f"live line {seq}-{i}: Power balance off by 1.{i} %",
                        "log_type": "warning",
                    }
                    for i in range(10)
                ]
                body = {
                    "machineId": "10.2.0.2",
                    "message": {"type": "log_batch", "logs": batch, "sequence": 10**6 + seq},
                }
                client.post("/api/gui-update", json=body).raise_for_status()
            middle = worker_ids[workers // 2]
            searches: dict[str, Any] = {}
            for name, query in QUERIES.items():
                searches[f"all_{name}"] = timed(client, "/api/logs", {"q": query}, repeat)
            for name, query in QUERIES.items():
                searches[f"worker_{name}"] = timed(
                    client, f"/api/workers/{middle}/logs", {"q": query}, repeat
                )
            quiet = f"/api/workers/{worker_ids[0]}/logs"
            searches["worker_absent_here"] = timed(client, quiet, {"q": ABSENT_HERE}, repeat)
            result["searches"] = searches
            result["target_p50_ms"] = TARGET_P50_MS
            result["targets_met"] = all(s["p50_ms"] < TARGET_P50_MS for s in searches.values())
    return result


def print_table(result: dict[str, Any]) -> None:
    print(
        f"{result['database']}: {result['lines']:,} lines over {result['workers']} workers"
        f" (load {result['load_s']} s, index {result['index_s']} s), {result['repeat']} requests each"
    )
    print(f"{'search':<32} {'p50 ms':>8} {'p99 ms':>8} {'hits':>6}")
    for name, figures in result["searches"].items():
        print(f"{name:<32} {figures['p50_ms']:>8.2f} {figures['p99_ms']:>8.2f} {figures['hits']:>6}")
    met = "met" if result["targets_met"] else "NOT met"
    print(f"target: p50 < {TARGET_P50_MS:.0f} ms for every search: {met}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        help="left out: SQLite in a temp dir; `postgres`: a scratch database on the local PostgreSQL",
    )
    parser.add_argument("--lines", type=int, default=1_000_000, help="log lines to store (default 1,000,000)")
    parser.add_argument(
        "--workers", type=int, default=100, help="workers the lines are spread over (default 100)"
    )
    parser.add_argument("--repeat", type=int, default=30, help="timed requests per search (default 30)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    if args.lines < args.workers or args.workers < 2:
        parser.error("--workers must be at least 2 and --lines at least --workers")
    if args.database_url == "postgres":
        with scratch_postgres() as url:
            result = run(url, args.lines, args.workers, args.repeat)
    else:
        result = run(args.database_url, args.lines, args.workers, args.repeat)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
    return 0 if result["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
