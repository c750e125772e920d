"""Benchmark the worker agent: the cost of forwarding a busy study, and the spool replay rate.

1. Forwarding: a real server and a real agent process, whose study command is this file in
   `--emit` mode: GOLIAT-style console output at 200 log lines/s (half of them progress-level
   records) plus 50 iSolve progress lines/s. Measured on the agent process alone (the study and
   the server are other processes): CPU (% of one core) and peak RSS. Targets: < 5 %, < 60 MB.
2. Outage: the server is stopped for a while and started again on the same port and data; the
   agent's backlog and how fast it drains (messages/s, lines/s) are reported.
3. Replay: a spool filled with the message mix of an outage, drained by the agent's `Sender`
   (a) into a stub server that answers 200 at once, which measures the agent's side
   (target >= 5,000 messages/s), and (b) into the real server, which is bound by the server's
   cost per request.

    .venv/bin/python bench/agent.py            # human-readable figures
    .venv/bin/python bench/agent.py --json     # one JSON object
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil

from goliat_monitor.agent.client import Sender, ServerClient
from goliat_monitor.outbox import GUI_UPDATE, Spool

CPU_TARGET = 5.0  # % of one core
RSS_TARGET_MB = 60.0
REPLAY_TARGET = 5_000  # messages/s
HERE = Path(__file__).resolve()


# -- the emitting "study" ------------------------------------------------------------------------


def emit(lines_per_s: int, progress_per_s: int, duration: float) -> int:
    """Print GOLIAT-like console output at a fixed rate (the study the agent forwards)."""
    out = sys.stdout
    out.write("--- Starting Far-Field Study: bench.json ---\n")
    out.write("--- Processing Simulation 1/1: thelonious, 700MHz, x_pos, theta ---\n")
    out.write("--- Starting: run ---\n")
    out.write("  - Run simulation total...\n")
    out.flush()
    tick = 0.02
    per_tick_lines = max(1, round(lines_per_s * tick))
    per_tick_progress = max(1, round(progress_per_s * tick))
    start = time.monotonic()
    n = 0
    k = 0
    while (elapsed := time.monotonic() - start) < duration:
        chunk = []
        for _ in range(per_tick_lines):
            n += 1
            if n % 2:  # a progress-level GOLIAT record: batched into log_batch
                chunk.append(f"    - Memory usage at {n % 90}%, reloading project to free memory...")
            else:  # Sim4Life / iSolve output: verbose level
                chunk.append(f"Sim4Life: [Info] Iteration {n}: field update converged to 1e-{n % 9} ")
        for _ in range(per_tick_progress):
            k += 1
            percent = min(99, int(100 * elapsed / duration))
            left = max(1, int(duration - elapsed))
            chunk.append(
                f"[PROGRESS]: {percent}% [ {k} / 100000 ] Time Update, estimated remaining time "
                f"{left} seconds @ 152.3 MCells/s"
            )
        out.write("\n".join(chunk) + "\n")
        out.flush()
        next_at = start + (k // per_tick_progress) * tick
        time.sleep(max(0.0, next_at - time.monotonic()))
    out.write("--- Finished: run (took 1.0s) ---\n--- FarFieldStudy Finished ---\n")
    out.flush()
    return 0


# -- a stub server that answers 200 at once ------------------------------------------------------


async def _stub(port: int) -> None:
    body = b'{"success":true}'
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                headers = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in headers.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                payload = await reader.readexactly(length) if length else b""
                if headers.startswith(b"POST /api/gui-updates "):
                    count = len(json.loads(payload)["updates"])
                    batch = json.dumps({"results": [{"status": 200}] * count}).encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                        % len(batch)
                        + batch
                    )
                else:
                    writer.write(head + body)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


# -- helpers -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def _start_server(port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "goliat_monitor", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    process = subprocess.Popen([*argv, "--log-level", "warning"], stderr=subprocess.DEVNULL)
    _wait_http(f"http://127.0.0.1:{port}/api/health")
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _spool_depth(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    except sqlite3.Error:
        return -1


def _spool_lines(path: Path) -> tuple[int, int]:
    """(messages, log lines) waiting in a spool file."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
        rows = conn.execute("SELECT payload FROM outbox").fetchall()
    lines = 0
    for (payload,) in rows:
        message = json.loads(payload).get("message", {})
        lines += len(message.get("logs", [])) if message.get("type") == "log_batch" else 0
    return len(rows), lines


# -- 1 + 2: forwarding and outage ----------------------------------------------------------------


def bench_forwarding(workdir: Path, seconds: float, outage: float) -> dict[str, Any]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start_server(port, workdir / "server")
    agent: subprocess.Popen[bytes] | None = None
    try:
        study = {
            "name": "bench",
            "assignments": [{"splitConfig": {"study_type": "far_field"}, "status": "PENDING"}],
        }
        httpx.post(f"{url}/api/super-studies", json=study, timeout=30).raise_for_status()
        duration = 3 + seconds + 2 + outage + 20
        command = subprocess.list2cmdline if os.name == "nt" else __import__("shlex").join
        study_command = command(
            [sys.executable, str(HERE), "--emit", "--duration", str(duration), "{config}"]
        )
        agent_dir = workdir / "agent"
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "goliat_monitor",
                "agent",
                "--server",
                url,
                "--work-dir",
                str(agent_dir),
                "--machine-id",
                "198.51.100.1",
                "--command",
                study_command,
                "--plain",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        proc = psutil.Process(agent.pid)
        deadline = time.monotonic() + 30
        while not [c for c in proc.children(recursive=True) if "--emit" in " ".join(c.cmdline())]:
            if time.monotonic() > deadline:
                raise RuntimeError("the agent did not start the study")
            time.sleep(0.1)
        time.sleep(3)  # warm-up: imports, first requests
        rss_peak = 0
        before = proc.cpu_times()
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            rss_peak = max(rss_peak, proc.memory_info().rss)
            time.sleep(0.25)
        after = proc.cpu_times()
        elapsed = time.monotonic() - t0
        cpu = (after.user + after.system - before.user - before.system) / elapsed * 100

        # Outage: stop the server, let the agent spool, start it again on the same port and data.
        _stop(server)
        time.sleep(outage)
        spool = agent_dir / "spool.sqlite3"
        backlog, backlog_lines = _spool_lines(spool)
        rss_peak = max(rss_peak, proc.memory_info().rss)
        server = _start_server(port, workdir / "server")
        restarted = time.monotonic()
        drained_at = None
        while time.monotonic() - restarted < 60:
            if _spool_depth(spool) == 0:
                drained_at = time.monotonic()
                break
            time.sleep(0.01)
        drain = (drained_at or time.monotonic()) - restarted
        return {
            "lines_per_s": 200,
            "progress_per_s": 50,
            "measured_s": round(elapsed, 1),
            "agent_cpu_percent": round(cpu, 2),
            "agent_rss_mb": round(rss_peak / 2**20, 1),
            "cpu_ok": cpu < CPU_TARGET,
            "rss_ok": rss_peak / 2**20 < RSS_TARGET_MB,
            "outage_s": outage,
            "outage_backlog_messages": backlog,
            "outage_backlog_lines": backlog_lines,
            "outage_drain_s": round(drain, 2),
            "outage_drained": drained_at is not None,
            "outage_replay_msg_per_s": round(backlog / drain) if drain > 0 else None,
            "outage_replay_lines_per_s": round(backlog_lines / drain) if drain > 0 else None,
        }
    finally:
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGINT)
            try:
                agent.wait(20)
            except subprocess.TimeoutExpired:
                agent.kill()
        _stop(server)


# -- 3: replay -----------------------------------------------------------------------------------


def _outage_mix(n: int) -> list[tuple[str, dict[str, Any]]]:
    """What an outage leaves in the spool: log batches, and progress values (3 types, 1 in 3)."""
    items = []
    for i in range(n):
        if i % 3 == 0:
            kind = ("overall_progress", "stage_progress", "profiler_update")[(i // 3) % 3]
            message: dict[str, Any] = {"type": kind, "current": i % 100, "total": 100}
            if kind == "profiler_update":
                message = {"type": kind, "eta_seconds": 1000 - i % 100}
        else:
            message = {
                "type": "log_batch",
                "sequence": i,
                "logs": [
                    {
                        "type": "status",
                        "message": f"    - Voxelize simulation... line {i}.{k}",
                        "log_type": "progress",
                    }
                    for k in range(10)
                ],
            }
        body = {
            "machineId": "198.51.100.2",
            "agentId": "bench",
            "assignmentId": None,
            "messageId": uuid.uuid4().hex,
            "message": message,
            "timestamp": time.time(),
        }
        items.append((GUI_UPDATE, {k: v for k, v in body.items() if v is not None}))
    return items


def bench_replay(workdir: Path, url: str, n: int, name: str) -> dict[str, Any]:
    path = workdir / f"replay-{name}.sqlite3"
    with Spool(path) as spool:
        spool.append_many(_outage_mix(n))
        client = ServerClient(url, machine_id="198.51.100.2", agent_id="bench", timeout=10)
        sender = Sender(spool, client)
        start = time.perf_counter()
        sender.start()
        drained = sender.wait_drained(120)
        elapsed = time.perf_counter() - start
        sender.stop(0)
        client.close()
        stats = sender.stats
    lines = sum(len(b["message"].get("logs", [])) for _, b in _outage_mix(n))
    return {
        f"replay_{name}_messages": n,
        f"replay_{name}_lines_per_s": round(lines / elapsed),
        f"replay_{name}_drained": drained,
        f"replay_{name}_msg_per_s": round(n / elapsed),
        f"replay_{name}_requests_per_s": round(stats.sent / elapsed),
        f"replay_{name}_skipped": stats.skipped,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_target_percent": CPU_TARGET,
        "rss_target_mb": RSS_TARGET_MB,
        "replay_target_msg_per_s": REPLAY_TARGET,
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        results.update(bench_forwarding(workdir, args.seconds, args.outage))
        port = _free_port()
        stub = subprocess.Popen([sys.executable, str(HERE), "--stub-server", str(port)])
        try:
            _wait_http(f"http://127.0.0.1:{port}/")
            results.update(bench_replay(workdir, f"http://127.0.0.1:{port}", args.replay_n, "stub"))
        finally:
            _stop(stub)
        port = _free_port()
        server = _start_server(port, workdir / "server2")
        try:
            results.update(bench_replay(workdir, f"http://127.0.0.1:{port}", args.replay_real_n, "server"))
        finally:
            _stop(server)
    # The target is the agent's own replay (spool + HTTP, into a server that answers at once);
    # the figure into a real server on SQLite is reported beside it, limited by the server.
    results["replay_ok"] = results["replay_stub_msg_per_s"] >= REPLAY_TARGET
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seconds", type=float, default=20.0, help="forwarding measurement window")
    parser.add_argument("--outage", type=float, default=20.0, help="seconds the server is down")
    parser.add_argument("--replay-n", type=int, default=20_000, help="messages replayed into the stub")
    parser.add_argument("--replay-real-n", type=int, default=20_000, help="messages replayed into the server")
    parser.add_argument("--emit", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument("--stub-server", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("config", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.emit:
        return emit(200, 50, args.duration)
    if args.stub_server is not None:
        asyncio.run(_stub(args.stub_server))
        return 0

    results = run(args)
    if args.json:
        print(json.dumps(results))
    else:
        print(f"agent bench: python {results['python']} on {results['platform']}")
        print(f"  forwarding {results['lines_per_s']} lines/s + {results['progress_per_s']} progress/s")
        print(
            f"    agent CPU  : {results['agent_cpu_percent']:6.2f} % of one core "
            f"(target < {CPU_TARGET} %: {'OK' if results['cpu_ok'] else 'TOO HIGH'})"
        )
        print(
            f"    agent RSS  : {results['agent_rss_mb']:6.1f} MB "
            f"(target < {RSS_TARGET_MB:.0f} MB: {'OK' if results['rss_ok'] else 'TOO HIGH'})"
        )
        print(f"  outage of {results['outage_s']:.0f} s, then the server is back")
        print(
            f"    backlog    : {results['outage_backlog_messages']} messages "
            f"({results['outage_backlog_lines']} log lines)"
        )
        print(
            f"    drained    : {results['outage_drain_s']} s after the restart, reconnect included "
            f"({results['outage_replay_msg_per_s']} msg/s, {results['outage_replay_lines_per_s']} log lines/s)"
        )
        for name, label in (("stub", "stub server (agent side)"), ("server", "real server")):
            print(
                f"  replay into {label}: {results[f'replay_{name}_msg_per_s']:,} msg/s "
                f"({results[f'replay_{name}_requests_per_s']:,} requests/s, "
                f"{results[f'replay_{name}_lines_per_s']:,} log lines/s, "
                f"{results[f'replay_{name}_skipped']} superseded progress values skipped)"
            )
        verdict = "OK" if results["replay_ok"] else "TOO SLOW"
        print(f"  replay target {REPLAY_TARGET:,} msg/s (agent side): {verdict}")
    return 0 if results["replay_ok"] and results["cpu_ok"] and results["rss_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
