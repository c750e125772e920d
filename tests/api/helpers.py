"""Payloads shaped exactly like GOLIAT's client sends them (see docs/goliat-protocol.md)."""

from __future__ import annotations

import time
from typing import Any, cast

import httpx

MACHINE = "203.0.113.7"


def gui(
    client: httpx.Client, message: dict[str, Any], machine: str = MACHINE, **extra: Any
) -> httpx.Response:
    body = {"machineId": machine, "message": message, "timestamp": time.time(), **extra}
    return client.post("/api/gui-update", json=body)


def log_batch(sequence: int, lines: list[tuple[str, str]], at: float | None = None) -> dict[str, Any]:
    """A batch whose entries carry the time they were made (`at`, default now), as GOLIAT's do.

    One time for the whole batch, as a Windows clock that ticks every ~16 ms gives: a batch made
    later never holds a line stamped earlier.
    """
    made = time.time() if at is None else at
    return {
        "type": "log_batch",
        "logs": [
            {"type": "status", "message": text, "log_type": kind, "timestamp": made} for text, kind in lines
        ],
        "sequence": sequence,
    }


def heartbeat(client: httpx.Client, machine: str = MACHINE, **info: Any) -> httpx.Response:
    return client.post("/api/heartbeat", json={"machineId": machine, **info})


def only_worker(client: httpx.Client) -> dict[str, Any]:
    workers = client.get("/api/workers").json()
    assert len(workers) == 1, workers
    return cast(dict[str, Any], client.get(f"/api/workers/{workers[0]['id']}").json())


def create_study(
    client: httpx.Client, name: str = "campaign", count: int = 3, **extra: Any
) -> dict[str, Any]:
    body = {
        "name": name,
        "description": "test campaign",
        "baseConfig": {"study_type": "far_field", "phantoms": ["thelonious"]},
        "assignments": [
            {"splitConfig": {"study_type": "far_field", "frequencies_mhz": [700 + i]}, "status": "PENDING"}
            for i in range(count)
        ],
        **extra,
    }
    response = client.post("/api/super-studies", json=body)
    assert response.status_code == 200, response.text
    return cast(dict[str, Any], response.json())
