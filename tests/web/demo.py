"""A demo-like campaign built through the public API: for screenshots and end-to-end page tests.

Five GOLIAT machines (running, running, stalled, idle, offline), one super study with pieces in
every state, an hour of samples for the charts, a GOLIAT-shaped log, screenshots and result files.
The test server's clock is moved by hand, so "an hour" takes a second.
"""

from __future__ import annotations

import json
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tests.api.helpers import gui, heartbeat, log_batch
from tests.conftest import LiveServer

MACHINES = {
    "fast": ("198.51.100.11", "gpu-node-01", "NVIDIA GeForce RTX 4090", 32, 128.0),
    "second": ("198.51.100.12", "gpu-node-02", "NVIDIA RTX A6000", 24, 96.0),
    "stuck": ("198.51.100.13", "gpu-node-03", "NVIDIA RTX 5000 Ada Generation", 16, 64.0),
    "done": ("198.51.100.14", "win10-lab", "NVIDIA GeForce RTX 3080", 12, 32.0),
    "gone": ("198.51.100.15", "old-box", None, 8, 15.7),
}

GOLIAT_LOG = [
    ("--- Processing Simulation 23/36: thelonious, 700MHz, x_pos, theta ---", "header"),
    ("  - Setup simulation...", "progress"),
    ("    - Load phantom...", "progress"),
    ("      - Done in 4.12s", "success"),
    ("    - Configure scene (bbox, plane wave)...", "progress"),
    ("      - Done in 0.11s", "success"),
    ("    - Assign materials...", "progress"),
    ("Material 'Skin' not found in database, using default", "warning"),
    ("      - Done in 8.06s", "success"),
    ("    - Configure solver (gridding, boundaries, sensors)...", "progress"),
    ("Grid step 2.5 mm below the recommended 3.0 mm for 700 MHz", "highlight"),
    ("      - Done in 0.22s", "success"),
    ("    - Voxelize simulation...", "progress"),
    ("Voxeler: 14.2 M cells, 1.2 GB", "verbose"),
    ("      - Done in 31.50s", "success"),
    ("  - Run simulation...", "progress"),
    ("iSolve: starting solver on GPU 0", "info"),
    ("[PROGRESS]: 25% [ 1000/4000] Time Update, estimated remaining time 3 minutes", "verbose"),
    ("iSolve failed, retry attempt 1", "error"),
    ("[PROGRESS]: 50% [ 2000/4000] Time Update, estimated remaining time 2 minutes", "verbose"),
    ("[PROGRESS]: 75% [ 3000/4000] Time Update, estimated remaining time 1 minutes", "verbose"),
    ("<img src=x onerror=alert(1)> (a hostile line stays text)", "default"),
]


@dataclass
class Demo:
    workers: dict[str, str] = field(default_factory=dict)
    study: dict[str, Any] = field(default_factory=dict)
    assignments: list[dict[str, Any]] = field(default_factory=list)


def png(width: int = 160, height: int = 90) -> bytes:
    """A small line-chart PNG written by hand (no imaging library), like GOLIAT's sensor plots."""
    rows = []
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            curve = int(height / 2 + (height / 3) * __import__("math").sin(x / 12) * (1 - x / (2 * width)))
            on_curve = abs(y - curve) <= 1
            grid = x % 40 == 0 or y % 30 == 0
            row += bytes((37, 99, 235) if on_curve else (220, 225, 232) if grid else (255, 255, 255))
        rows.append(bytes(row))
    raw = zlib.compress(b"".join(rows), 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def _beat(server: LiveServer, key: str, **metrics: Any) -> None:
    machine, host, gpu, cores, ram = MACHINES[key]
    info: dict[str, Any] = {"hostname": host, "cpuCores": cores, "totalRamGB": ram, **metrics}
    if gpu:
        info["gpuName"] = gpu
    assert heartbeat(server.client, machine, **info).status_code == 200


def _send(server: LiveServer, key: str, message: dict[str, Any]) -> None:
    response = gui(server.client, message, machine=MACHINES[key][0])
    assert response.status_code == 200, response.text


def _create_study(server: LiveServer) -> dict[str, Any]:
    configs = [
        {
            "extends": "base_config.json",
            "study_type": "far_field",
            "phantoms": [phantom],
            "frequencies_mhz": freqs,
        }
        for phantom in ("thelonious", "eartha")
        for freqs in ([450, 700], [835, 1450], [2140, 2450], [3500, 5800])
    ]
    body = {
        "name": "far_field_campaign",
        "description": "Far-field exposure of two phantoms at eight frequencies",
        "baseConfig": {"study_type": "far_field", "phantoms": ["thelonious", "eartha"]},
        "assignments": [{"splitConfig": c, "status": "PENDING"} for c in configs],
        "maxAttempts": 1,
    }
    response = server.client.post("/api/super-studies", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _claim(server: LiveServer, key: str, assignment: dict[str, Any]) -> None:
    response = server.client.post(
        f"/api/assignments/{assignment['id']}/claim", json={"machineId": MACHINES[key][0]}
    )
    assert response.status_code == 200, response.text


def upload_results(server: LiveServer, assignment_id: str, phantom: str, freq: int) -> None:
    path = f"far_field/{phantom}/{freq}MHz/environmental_x_pos_theta"
    sar = {
        "peak_sar_10g_W_kg": 0.0123,
        "whole_body_sar_W_kg": 0.0021,
        "frequency_mhz": freq,
        "phantom": phantom,
    }
    files = [
        ("files", ("sar_results.json", json.dumps(sar).encode(), "application/json")),
        ("files", ("point_sensor_data.png", png(), "image/png")),
        ("files", ("verbose.log", b"2025-10-14 10:23:45,123 - INFO - Done in 59.86s\n", "text/plain")),
    ]
    response = server.client.post(
        f"/api/assignments/{assignment_id}/results", data={"relativePath": path}, files=files
    )
    assert response.status_code == 200, response.text


def _timings(simulation: int) -> list[dict[str, Any]]:
    """What the agent sends for one simulation: GOLIAT's phase and subtask durations."""
    wobble = 1 + (simulation * 7 % 5) / 20
    subtasks = {
        "setup": {"load_phantom": 4.1, "configure_scene": 0.1, "assign_materials": 8.1, "voxelize": 31.5},
        "run": {"isolve": 612.0 * wobble, "write_input_file": 2.2},
        "extract": {"sar_statistics": 21.0 * wobble, "point_sensors": 1.4, "power_balance": 3.2},
    }
    messages: list[dict[str, Any]] = []
    for phase, tasks in subtasks.items():
        for task, seconds in tasks.items():
            messages.append(
                {
                    "type": "timing",
                    "phase": phase,
                    "subtask": task,
                    "seconds": seconds,
                    "simulation": simulation,
                }
            )
        total = sum(tasks.values())
        messages.append({"type": "timing", "phase": phase, "seconds": total, "simulation": simulation})
    return messages


def build(server: LiveServer, screenshot_jpeg: bytes | None = None, minutes: int = 60) -> Demo:
    demo = Demo()
    clock = server.clock
    _beat(server, "gone")
    clock.advance(600)
    study = _create_study(server)
    pieces = study["assignments"]
    demo.study = study

    # Two pieces already finished, one failed, then the machines pick up the next ones.
    _claim(server, "done", pieces[0])
    _send(server, "done", {"type": "overall_progress", "current": 100, "total": 100})
    _send(server, "done", {"type": "finished", "message": "Study finished successfully"})
    upload_results(server, pieces[0]["id"], "thelonious", 450)
    upload_results(server, pieces[0]["id"], "thelonious", 700)
    _claim(server, "second", pieces[1])
    _send(server, "second", {"type": "overall_progress", "current": 40, "total": 100})
    _send(server, "second", {"type": "fatal_error", "message": "iSolve crashed: CUDA error 700"})
    _claim(server, "done", pieces[2])
    _send(server, "done", {"type": "overall_progress", "current": 100, "total": 100})
    _send(server, "done", {"type": "finished", "message": "Study finished successfully"})
    upload_results(server, pieces[2]["id"], "thelonious", 2140)
    _claim(server, "fast", pieces[3])
    _claim(server, "second", pieces[4])
    _claim(server, "stuck", pieces[5])

    steps = minutes * 3  # every 20 s: GOLIAT's machines go offline after 30 s of silence

    def fast(step: int) -> None:
        load = (step * 7) % 23
        _beat(
            server,
            "fast",
            cpuPercent=55 + load,
            ramPercent=48 + step / 18,
            gpuPercent=88 - load / 2,
            vramUsedGB=17.5 + load / 10,
            vramTotalGB=24.0,
            diskReadMBps=40.0 + (step * 13) % 90 if step % 30 < 4 else 1.5 + load / 10,
            diskWriteMBps=12.0 + (step * 5) % 30 if step % 30 == 3 else 0.8 + load / 20,
            pageFaultsPerSec=(step * 11) % 17,
        )
        _send(server, "fast", {"type": "overall_progress", "current": 20 + step * 0.23, "total": 100})
        _send(server, "fast", {"type": "profiler_update", "eta_seconds": max(60.0, 5400 - step * 25.0)})
        if step % 30 == 0:  # one simulation's phases and subtasks, as the agent reads them
            for message in _timings(step // 30):
                _send(server, "fast", message)
        _send(
            server,
            "fast",
            {
                "type": "stage_progress",
                "name": "Run",
                "current": (step * 3) % 100,
                "total": 100,
                "sub_stage": "iSolve",
            },
        )
        if step % 9 == 0 and step // 9 < len(GOLIAT_LOG):
            _send(server, "fast", log_batch(step // 9, GOLIAT_LOG[step // 9 : step // 9 + 1]))

    def second(step: int) -> None:
        load = (step * 7) % 23
        _beat(
            server,
            "second",
            cpuPercent=30 + load / 2,
            ramPercent=35.0,
            gpuPercent=60 + load,
            vramUsedGB=30.0,
            vramTotalGB=48.0,
        )
        _send(server, "second", {"type": "overall_progress", "current": 2 + step * 0.09, "total": 100})
        _send(
            server,
            "second",
            {
                "type": "stage_progress",
                "name": "Setup",
                "current": (step * 4) % 100,
                "total": 100,
                "sub_stage": "Voxelize",
            },
        )

    def stuck(step: int) -> None:
        _beat(
            server, "stuck", cpuPercent=3.0, ramPercent=71.0, gpuPercent=0.0, vramUsedGB=2.0, vramTotalGB=32.0
        )
        if step < steps - 36:
            _send(server, "stuck", {"type": "overall_progress", "current": 30 + step * 0.1, "total": 100})
            _send(server, "stuck", {"type": "stage_progress", "name": "Extract", "current": 40, "total": 100})

    def done(step: int) -> None:
        _beat(server, "done", cpuPercent=2.0, ramPercent=20.0)

    # The machines talk at once, as real ones do; each one's messages stay in order.
    with ThreadPoolExecutor(4) as pool:
        for step in range(steps):
            clock.advance(20)
            list(pool.map(lambda send, at=step: send(at), (fast, second, stuck, done)))
    sequence = min(steps // 9 + 1, len(GOLIAT_LOG))

    rest = [line for i, line in enumerate(GOLIAT_LOG) if i >= steps // 9]
    for start in range(0, len(rest), 5):
        _send(server, "fast", log_batch(sequence, rest[start : start + 5]))
        sequence += 1
    _send(
        server,
        "fast",
        {
            "type": "simulation_details",
            "simulation_count": 23,
            "total_simulations": 36,
            "current_case": "thelonious, 700MHz, x_pos, theta",
        },
    )
    _send(server, "fast", {"type": "profiler_update", "eta_seconds": 2460})
    _send(
        server,
        "second",
        {
            "type": "simulation_details",
            "simulation_count": 2,
            "total_simulations": 4,
            "current_case": "eartha, 450MHz, z_neg, phi",
        },
    )
    _send(server, "second", {"type": "profiler_update", "eta_seconds": 9100})
    if screenshot_jpeg:
        for tab in ("Timings", "Overall_Progress", "System_Utilization", "Disk_I/O"):
            response = server.client.post(
                "/api/gui-screenshots",
                data={"machineId": MACHINES["fast"][0]},
                files=[(tab, (f"{tab}.jpg", screenshot_jpeg, "image/jpeg"))],
            )
            assert response.status_code == 200, response.text

    for worker in server.client.get("/api/workers").json():
        for key, (machine, *_rest) in MACHINES.items():
            if worker["machineId"] == machine:
                demo.workers[key] = worker["id"]
    label = server.client.patch(
        f"/api/workers/{demo.workers['fast']}", json={"machineLabel": "RTX 4090 · rack 2"}
    )
    assert label.status_code == 200, label.text
    demo.assignments = server.client.get(f"/api/super-studies/{study['id']}/assignments").json()
    return demo
