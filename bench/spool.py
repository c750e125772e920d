"""Benchmark the agent's SQLite spool: append rate and replay (peek + ack) rate.

The bridge needs replay well above what it can POST (>= 5,000 messages/s), so a backlog
built during a long outage drains as fast as the server accepts it.

    .venv/bin/python bench/spool.py            # human-readable figures
    .venv/bin/python bench/spool.py --json     # one JSON object, for CI or comparisons
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import tempfile
import time
import uuid
from typing import Any

from goliat_monitor.outbox import Spool

REPLAY_TARGET = 5_000  # messages/s the bridge needs


def _payload(i: int) -> dict[str, Any]:
    """A realistic spooled gui-update body: one log batch of 10 lines (about 1 KB of JSON)."""
    return {
        "machineId": "203.0.113.7",
        "messageId": uuid.uuid4().hex,
        "timestamp": time.time(),
        "message": {
            "type": "log_batch",
            "sequence": i,
            "logs": [
                {
                    "type": "status",
                    "message": f"  - Simulation {i}: voxelizing phantom thelonious at 700 MHz, line {k}",
                    "log_type": "info",
                    "timestamp": time.time(),
                }
                for k in range(10)
            ],
        },
    }


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def bench_append_single(path: str, n: int, synchronous: str) -> float:
    """One commit per message: the worst case (a producer that does not batch)."""
    payloads = [_payload(i) for i in range(n)]
    with Spool(path, synchronous=synchronous) as spool:  # type: ignore[arg-type]
        start = time.perf_counter()
        for p in payloads:
            spool.append("gui-update", p)
        return _rate(n, time.perf_counter() - start)


def bench_append_many(path: str, n: int, batch: int, synchronous: str) -> float:
    payloads = [("gui-update", _payload(i)) for i in range(n)]
    with Spool(path, synchronous=synchronous) as spool:  # type: ignore[arg-type]
        start = time.perf_counter()
        for at in range(0, n, batch):
            spool.append_many(payloads[at : at + batch])
        return _rate(n, time.perf_counter() - start)


def bench_replay(path: str, batch: int, synchronous: str) -> tuple[float, int]:
    """Drain whatever the spool holds: peek a batch, ack it, repeat; checks order as it goes."""
    with Spool(path, synchronous=synchronous) as spool:  # type: ignore[arg-type]
        total = spool.depth()
        seen = 0
        last_id = 0
        start = time.perf_counter()
        while True:
            messages = spool.peek(batch)
            if not messages:
                break
            if messages[0].id <= last_id:
                raise AssertionError("spool replayed out of order")
            last_id = messages[-1].id
            spool.ack([m.id for m in messages])
            seen += len(messages)
        elapsed = time.perf_counter() - start
        if seen != total or spool.depth() != 0:
            raise AssertionError(f"replayed {seen} of {total}")
        return _rate(seen, elapsed), seen


def run(n: int, batch: int, single_n: int, workdir: str) -> dict[str, Any]:
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "messages": n,
        "batch": batch,
        "payload_bytes": len(json.dumps(_payload(0))),
        "replay_target_per_s": REPLAY_TARGET,
    }
    for sync in ("NORMAL", "FULL"):
        key = sync.lower()
        path = os.path.join(workdir, f"single-{key}.sqlite")
        results[f"append_single_{key}_per_s"] = round(bench_append_single(path, single_n, sync))
        path = os.path.join(workdir, f"many-{key}.sqlite")
        results[f"append_many_{key}_per_s"] = round(bench_append_many(path, n, batch, sync))
        rate, _ = bench_replay(path, batch, sync)
        results[f"replay_{key}_per_s"] = round(rate)
    results["replay_ok"] = min(results["replay_normal_per_s"], results["replay_full_per_s"]) >= REPLAY_TARGET
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="messages for append_many + replay")
    parser.add_argument("--single-n", type=int, default=2_000, help="messages for one-commit appends")
    parser.add_argument("--batch", type=int, default=500, help="append_many / peek batch size")
    parser.add_argument("--dir", default=None, help="where to put the spool files (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as workdir:
        results = run(args.n, args.batch, args.single_n, workdir)

    if args.json:
        print(json.dumps(results))
    else:
        print(f"spool bench: python {results['python']}, sqlite {results['sqlite']}")
        print(f"  {results['messages']} messages of ~{results['payload_bytes']} B, batch {results['batch']}")
        for sync in ("normal", "full"):
            print(f"  synchronous={sync.upper()}")
            print(f"    append, 1 commit each : {results[f'append_single_{sync}_per_s']:>10,} msg/s")
            print(f"    append_many           : {results[f'append_many_{sync}_per_s']:>10,} msg/s")
            print(f"    replay (peek + ack)   : {results[f'replay_{sync}_per_s']:>10,} msg/s")
        verdict = "OK" if results["replay_ok"] else "TOO SLOW"
        print(f"  replay target {REPLAY_TARGET:,} msg/s: {verdict}")
    return 0 if results["replay_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
