"""Our WebGUIBridge against the real server over real HTTP: order, the final 100 %, screenshots."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from goliat_monitor.bridge import WebGUIBridge
from tests.conftest import LiveServer
from tests.support import wait_for


def test_bridge_delivers_every_line_in_order_and_the_final_100(server: LiveServer) -> None:
    bridge = WebGUIBridge(server.url, "198.51.100.20", progress_hz=5.0)
    bridge.set_system_info({"hostname": "bridge-host", "gpuName": "RTX", "cpuCores": 8, "totalRamGB": 32.0})
    bridge.start()
    for i in range(300):
        bridge.enqueue(
            {"type": "status", "message": f"line {i:03d}", "log_type": "warning" if i % 50 == 0 else "info"}
        )
        bridge.enqueue({"type": "overall_progress", "current": i + 1, "total": 300})
    bridge.enqueue(
        {"type": "gui_screenshots", "screenshots": {"System Utilization": b"\xff\xd8\xff\xe0jpeg"}}
    )
    wait_for(lambda: bridge.screenshots_sent >= 1)  # screenshots are state: stop() does not wait for them
    bridge.enqueue({"type": "finished", "message": "Study finished successfully"})
    bridge.stop(timeout=20)
    assert bridge.dropped == 0 and bridge.rejected == 0

    worker = wait_for(lambda: (server.client.get("/api/workers").json() or [None])[0])
    detail = server.client.get(f"/api/workers/{worker['id']}").json()
    lines = [line["message"] for line in detail["guiState"]["logMessages"]]
    older = detail["olderLogsCursor"]
    while older:
        page = server.client.get(f"/api/workers/{worker['id']}/logs", params={"before": older}).json()
        lines = [line["message"] for line in page["logs"]] + lines
        older = page["nextBefore"]
    assert lines == [f"line {i:03d}" for i in range(300)]
    assert detail["guiState"]["progress"] == 100.0
    assert detail["guiState"]["warningCount"] == 6
    assert detail["status"] == "IDLE"
    assert detail["hostname"] == "bridge-host"
    shot = server.client.get(f"/api/workers/{worker['id']}/screenshots/System_Utilization")
    assert shot.status_code == 200 and shot.content == b"\xff\xd8\xff\xe0jpeg"


def test_bridge_authenticates_with_the_worker_token(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(worker_token="tok")
    bridge = WebGUIBridge(server.url, "198.51.100.21", token="tok")
    bridge.start()
    bridge.enqueue({"type": "status", "message": "hello", "log_type": "info"})
    bridge.stop(timeout=10)
    assert bridge.rejected == 0
    worker = server.client.get("/api/workers").json()[0]
    assert (
        server.client.get(f"/api/workers/{worker['id']}").json()["guiState"]["logMessages"][0]["message"]
        == "hello"
    )
    assert httpx.post(f"{server.url}/api/heartbeat", json={"machineId": "x"}).status_code == 401


def _all_lines(server: LiveServer, worker_id: str) -> list[str]:
    detail = server.client.get(f"/api/workers/{worker_id}").json()
    lines = [line["message"] for line in detail["guiState"]["logMessages"]]
    older = detail["olderLogsCursor"]
    while older:
        page = server.client.get(f"/api/workers/{worker_id}/logs", params={"before": older}).json()
        lines = [line["message"] for line in page["logs"]] + lines
        older = page["nextBefore"]
    return lines


def test_two_bridges_on_one_machine_keep_each_studys_order_and_a_later_run_comes_after(
    server: LiveServer,
) -> None:
    machine = "198.51.100.30"  # `goliat parallel`: two studies, one machine id
    first, second = WebGUIBridge(server.url, machine), WebGUIBridge(server.url, machine)
    first.start()
    second.start()
    for i in range(200):
        first.enqueue({"type": "status", "message": f"A {i:03d}", "log_type": "info"})
        second.enqueue({"type": "status", "message": f"B {i:03d}", "log_type": "info"})
    first.stop(timeout=20)
    second.stop(timeout=20)
    assert first.dropped == second.dropped == 0
    worker = wait_for(lambda: (server.client.get("/api/workers").json() or [None])[0])
    assert server.client.get(f"/api/workers/{worker['id']}").json()["concurrentStudies"] == 2

    server.clock.advance(30)  # the next `goliat study` on the machine, once both have ended
    later = WebGUIBridge(server.url, machine)
    later.start()
    for i in range(50):
        later.enqueue({"type": "status", "message": f"C {i:03d}", "log_type": "info"})
    later.stop(timeout=20)

    lines = _all_lines(server, worker["id"])
    assert [line for line in lines if line.startswith("A")] == [f"A {i:03d}" for i in range(200)]
    assert [line for line in lines if line.startswith("B")] == [f"B {i:03d}" for i in range(200)]
    assert lines[400:] == [f"C {i:03d}" for i in range(50)]
    assert server.client.get(f"/api/workers/{worker['id']}").json()["concurrentStudies"] == 1
