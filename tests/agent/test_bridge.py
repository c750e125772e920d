"""WebGUIBridge against a real HTTP server that can fail on demand.

The server is stdlib `ThreadingHTTPServer` on port 0: it records every attempt and "accepts"
(keeps) only what it answers 200, so the tests see exactly what a goliat-monitor server would.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from python_multipart import parse_form

from goliat_monitor import bridge as bridge_module
from goliat_monitor.bridge import WebGUIBridge
from goliat_monitor.outbox import Spool
from tests.support import wait_for

# Answer rule: given the request and how many times this messageId was seen before, return a
# status, or None to drop the connection without answering.
Rule = Callable[["Request", int], int | None]


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Recorder:
    rule: Rule = field(default=lambda req, seen: 200)
    attempts: list[Request] = field(default_factory=list)
    accepted: list[Request] = field(default_factory=list)
    seen_ids: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, req: Request) -> int | None:
        with self.lock:
            self.attempts.append(req)
            message_id = req.json.get("messageId") if req.path == "/api/gui-update" else None
            seen = self.seen_ids.get(message_id, 0) if message_id else 0
            if message_id:
                self.seen_ids[message_id] = seen + 1
            status = self.rule(req, seen)
            if status == 200:
                self.accepted.append(req)
            return status

    def updates(self) -> list[dict[str, Any]]:
        """Accepted gui-update bodies, deduplicated by messageId as the real server does."""
        with self.lock:
            bodies = [r.json for r in self.accepted if r.path == "/api/gui-update"]
        seen: set[str] = set()
        unique = []
        for body in bodies:
            if body["messageId"] not in seen:
                seen.add(body["messageId"])
                unique.append(body)
        return unique

    def messages(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [b["message"] for b in self.updates() if kind is None or b["message"]["type"] == kind]

    def log_lines(self) -> list[str]:
        return [line["message"] for m in self.messages("log_batch") for line in m["logs"]]

    def requests_to(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.attempts if r.path == path]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status = self.server.recorder.answer(Request(self.path, dict(self.headers.items()), body))
        if status is None:  # simulate a dead proxy / crashed server: hang up without answering
            self.close_connection = True
            return
        payload = b'{"ok": true}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    recorder: Recorder


@pytest.fixture
def stub() -> Iterator[tuple[Recorder, str]]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.recorder = Recorder()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd.recorder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_bridge(stub: tuple[Recorder, str]) -> Iterator[Callable[..., WebGUIBridge]]:
    bridges: list[WebGUIBridge] = []

    def make(**kwargs: Any) -> WebGUIBridge:
        options: dict[str, Any] = {
            "retry_base": 0.02,
            "retry_cap": 0.1,
            "heartbeat_interval": 60.0,
            "request_timeout": 2.0,
        }
        options.update(kwargs)
        bridge = WebGUIBridge(options.pop("url", stub[1]), "203.0.113.7", **options)
        bridges.append(bridge)
        return bridge

    yield make
    for bridge in bridges:
        bridge.stop(timeout=0)


def status(text: str) -> dict[str, Any]:
    return {"type": "status", "message": text, "log_type": "info"}


def test_log_batches_keep_order_and_every_line_arrives_once_across_an_outage(
    stub: tuple[Recorder, str], make_bridge: Callable[..., WebGUIBridge]
) -> None:
    recorder, _ = stub
    bridge = make_bridge()
    bridge.start()
    expected = [f"line {n}" for n in range(300)]
    phases = {100: lambda r, s: 503, 160: lambda r, s: None, 230: lambda r, s: 200}  # 503, hang-ups, back
    for n, text in enumerate(expected):
        if n in phases:
            recorder.rule = phases[n]
        bridge.enqueue(status(text))
        time.sleep(0.002)

    wait_for(lambda: len(recorder.log_lines()) == len(expected))

    batches = recorder.messages("log_batch")
    assert [b["sequence"] for b in batches] == list(range(len(batches)))  # in order, no gaps
    assert recorder.log_lines() == expected  # every line once, in order
    assert all(1 <= len(b["logs"]) <= 10 for b in batches)
    assert all(line["type"] == "status" and "timestamp" in line for b in batches for line in b["logs"])
    assert bridge.retries > 0 and bridge.dropped == 0 and bridge.rejected == 0
    accepted_ids = [r.json["messageId"] for r in recorder.accepted if r.path == "/api/gui-update"]
    assert len(accepted_ids) == len(set(accepted_ids))  # only failures were retried


def test_message_ids_and_bodies_are_stable_across_retries(
    stub: tuple[Recorder, str], make_bridge: Callable[..., WebGUIBridge]
) -> None:
    recorder, _ = stub
    # The server stores the first two attempts but loses its answer, the third succeeds.
    recorder.rule = lambda req, seen: 200 if req.path != "/api/gui-update" or seen >= 2 else 503
    bridge = make_bridge(agent_id="agent-1")
    bridge.start()
    for n in range(5):
        bridge.enqueue({"type": "sim_details", "count": n, "total": 5, "details": f"case {n}"})

    wait_for(lambda: len(recorder.updates()) == 5)

    attempts = recorder.requests_to("/api/gui-update")
    by_id: dict[str, list[bytes]] = {}
    for req in attempts:
        by_id.setdefault(req.json["messageId"], []).append(req.body)
    assert len(by_id) == 5
    assert all(len(bodies) == 3 and len(set(bodies)) == 1 for bodies in by_id.values())
    first_seen = list(dict.fromkeys(req.json["messageId"] for req in attempts))
    assert [b["messageId"] for b in recorder.updates()] == first_seen  # retried in order
    body = recorder.updates()[0]
    assert set(body) == {"machineId", "message", "timestamp", "messageId", "agentId"}
    assert body["machineId"] == "203.0.113.7" and body["agentId"] == "agent-1"
    assert len(body["messageId"]) == 32 and int(body["messageId"], 16) >= 0


def test_throttling_limits_progress_rate_and_never_drops_the_final_value(
    stub: tuple[Recorder, str], make_bridge: Callable[..., WebGUIBridge]
) -> None:
    recorder, _ = stub
    bridge = make_bridge(progress_hz=5.0)
    bridge.start()
    started = time.monotonic()
    for n in range(101):  # 0..100 % over about half a second
        bridge.enqueue({"type": "overall_progress", "current": n, "total": 100})
        bridge.enqueue({"type": "stage_progress", "name": "Setup", "current": n, "total": 100})
        time.sleep(0.005)
    elapsed = time.monotonic() - started
    for _ in range(4):  # GOLIAT's send_finished repeats the 100 % five times
        bridge.enqueue({"type": "overall_progress", "current": 100, "total": 100})
    bridge.enqueue({"type": "finished", "message": "Study finished successfully"})

    wait_for(lambda: bool(recorder.messages("finished")))

    for kind in ("overall_progress", "stage_progress"):
        values = [m["current"] for m in recorder.messages(kind)]
        assert values[-1] == 100  # the final value arrived ...
        assert values == sorted(values) and values.count(100) == 1  # ... once, after the others
        assert len(values) <= elapsed * 5.0 + 3  # leading value + ~5 Hz + the final
    assert recorder.messages()[-1]["type"] == "finished"  # nothing overtakes the terminal message


def test_latest_progress_value_wins_within_an_interval(
    stub: tuple[Recorder, str], make_bridge: Callable[..., WebGUIBridge]
) -> None:
    recorder, _ = stub
    bridge = make_bridge(progress_hz=5.0)
    bridge.start()
    for n in range(1, 51):
        bridge.enqueue({"type": "stage_progress", "name": "Run", "current": n, "total": 100})

    wait_for(lambda: any(m["current"] == 50 for m in recorder.messages("stage_progress")))

    assert [m["current"] for m in recorder.messages("stage_progress")] == [1, 50]


def test_stop_flushes_partial_batch_and_pending_progress(
    stub: tuple[Recorder, str], make_bridge: Callable[..., WebGUIBridge]
) -> None:
    recorder, _ = stub
    bridge = make_bridge(progress_hz=1.0)
    bridge.start()
    bridge.enqueue({"type": "overall_progress", "current": 10, "total": 100})
    bridge.enqueue({"type": "overall_progress", "current": 30, "total": 100})  # held by the throttle
    for n in range(3):
        bridge.enqueue(status(f"tail {n}"))

    bridge.stop(timeout=2.0)

    assert recorder.log_lines() == ["tail 0", "tail 1", "tail 2"]
    assert [m["current"] for m in recorder.messages("overall_progress")] == [10, 30]
    assert not bridge.running and bridge.pending == 0
    bridge.enqueue(status("too late"))  # after stop: counted, never raises
    assert bridge.dropped == 1


def test_screenshots_are_multipart_with_tab_fields_and_machine_id(
    stub: tuple[Recorder, str], make_bridge: Callable[..., WebGUIBridge]
) -> None:
    recorder, _ = stub
    bridge = make_bridge(token="s3cret")
    bridge.start()
    jpeg_a = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\r\n--not-a-boundary\r\n\xff\xd9"
    jpeg_b = b"\xff\xd8\xff\xe0second\xff\xd9"
    bridge.enqueue(
        {"type": "gui_screenshots", "screenshots": {"Timings": jpeg_a, "System Utilization": jpeg_b}}
    )

    wait_for(lambda: bridge.screenshots_sent == 1)

    req = recorder.requests_to("/api/gui-screenshots")[0]
    assert req.headers["Authorization"] == "Bearer s3cret"
    fields: dict[str, bytes] = {}
    files: dict[str, tuple[bytes | None, bytes]] = {}
    parse_form(
        {"Content-Type": req.headers["Content-Type"].encode(), "Content-Length": str(len(req.body)).encode()},
        io.BytesIO(req.body),
        lambda f: fields.__setitem__(f.field_name.decode(), f.value or b""),  # type: ignore[union-attr]
        lambda f: files.__setitem__(f.field_name.decode(), (f.file_name, f.file_object.getvalue())),  # type: ignore[union-attr]
    )
    assert fields == {"machineId": b"203.0.113.7"}
    assert files == {
        "Timings": (b"Timings.jpg", jpeg_a),
        "System_Utilization": (b"System_Utilization.jpg", jpeg_b),
    }
    assert len(recorder.requests_to("/api/gui-screenshots")) == 1


def test_heartbeats_carry_system_info_agent_id_and_token(
    stub: tuple[Recorder, str], make_bridge: Callable[..., WebGUIBridge]
) -> None:
    recorder, _ = stub
    states: list[bool] = []
    bridge = make_bridge(token="s3cret", agent_id="agent-7", heartbeat_interval=0.05)
    bridge.set_system_info({"gpuName": "RTX 4090", "cpuCores": 32, "machineId": "ignored"})
    bridge.set_connection_callback(states.append)
    bridge.start()

    wait_for(lambda: len(recorder.requests_to("/api/heartbeat")) >= 3)

    beat = recorder.requests_to("/api/heartbeat")[0]
    assert beat.json == {
        "machineId": "203.0.113.7",
        "agentId": "agent-7",
        "gpuName": "RTX 4090",
        "cpuCores": 32,
    }
    assert beat.headers["Authorization"] == "Bearer s3cret"
    assert states[:2] == [False, True] and bridge.is_connected


def test_client_errors_are_rejected_once_and_do_not_block_the_queue(
    stub: tuple[Recorder, str], make_bridge: Callable[..., WebGUIBridge]
) -> None:
    recorder, _ = stub

    def rule(req: Request, seen: int) -> int:
        kind = req.json.get("message", {}).get("type") if req.path == "/api/gui-update" else None
        if kind == "bad":
            return 422
        if kind == "slow_down" and seen == 0:
            return 429  # 408 and 429 are retried like 5xx
        return 200

    recorder.rule = rule
    bridge = make_bridge()
    bridge.start()
    bridge.enqueue({"type": "bad"})
    bridge.enqueue({"type": "slow_down"})
    bridge.enqueue({"type": "end_animation"})
    bridge.enqueue("not a dict")  # type: ignore[arg-type]
    bridge.enqueue({"type": "print", "message": "odd", "value": math.nan, "obj": object()})

    wait_for(lambda: len(recorder.updates()) == 3)

    assert [m["type"] for m in recorder.messages()] == ["slow_down", "end_animation", "print"]
    assert (
        len([r for r in recorder.requests_to("/api/gui-update") if r.json["message"]["type"] == "bad"]) == 1
    )
    odd = recorder.messages("print")[0]
    assert odd["value"] is None and odd["obj"].startswith("<object")  # coerced, not lost
    assert bridge.rejected == 2  # the 422 and the non-dict


def test_dropped_counter_counts_what_exceeds_the_bound(
    stub: tuple[Recorder, str], make_bridge: Callable[..., WebGUIBridge], caplog: pytest.LogCaptureFixture
) -> None:
    recorder, _ = stub
    recorder.rule = lambda req, seen: 503
    bridge = make_bridge(max_buffer=20)
    bridge.start()
    with caplog.at_level(logging.WARNING, logger="goliat_monitor.bridge"):
        for n in range(100):
            bridge.enqueue({"type": "sim_details", "count": n, "total": 100, "details": ""})
        wait_for(lambda: bridge.dropped == 80)
    assert any("dropped" in r.getMessage() for r in caplog.records)

    recorder.rule = lambda req, seen: 200
    wait_for(lambda: len(recorder.updates()) == 20 and bridge.pending == 0)

    counts = [m["count"] for m in recorder.messages()]
    assert counts == sorted(counts)
    assert bridge.dropped == 80


def test_stop_leaves_undelivered_messages_in_the_spool_for_the_next_bridge(
    stub: tuple[Recorder, str], make_bridge: Callable[..., WebGUIBridge], tmp_path: Path
) -> None:
    recorder, _ = stub
    spool_path = str(tmp_path / "bridge.sqlite")
    recorder.rule = lambda req, seen: 200 if req.path != "/api/gui-update" else 503
    first = make_bridge(spool_path=spool_path)
    first.start()
    for n in range(15):
        first.enqueue(status(f"run1 {n}"))
    first.enqueue({"type": "finished", "message": "Study finished successfully"})
    wait_for(lambda: len(recorder.requests_to("/api/gui-update")) >= 2)  # retrying the head

    first.stop(timeout=0.1)

    with Spool(spool_path) as spool:
        assert spool.depth() == 3  # two log batches + finished
    assert first.dropped == 0

    recorder.rule = lambda req, seen: 200
    second = make_bridge(spool_path=spool_path)
    second.start()
    second.enqueue(status("run2 0"))
    wait_for(lambda: "run2 0" in recorder.log_lines())

    assert recorder.log_lines() == [f"run1 {n}" for n in range(15)] + ["run2 0"]
    assert [m["type"] for m in recorder.messages()] == ["log_batch", "log_batch", "finished", "log_batch"]
    assert [m.get("sequence") for m in recorder.messages()] == [0, 1, None, 0]  # run 2 restarts at 0
    retried_head = recorder.requests_to("/api/gui-update")[0].json["messageId"]
    assert recorder.updates()[0]["messageId"] == retried_head
    second.stop(timeout=2)
    with Spool(spool_path) as spool:
        assert spool.depth() == 0


_KILLED_PRODUCER = """
import sys, time
from goliat_monitor.bridge import WebGUIBridge
bridge = WebGUIBridge(sys.argv[1], "203.0.113.7", spool_path=sys.argv[2], retry_base=0.02, retry_cap=0.1)
bridge.start()
for n in range(25):
    bridge.enqueue({"type": "status", "message": f"killed {n}", "log_type": "info"})
bridge.enqueue({"type": "overall_progress", "current": 100, "total": 100})
time.sleep(60)
"""


def test_spool_survives_the_producer_being_killed(
    stub: tuple[Recorder, str], make_bridge: Callable[..., WebGUIBridge], tmp_path: Path
) -> None:
    recorder, url = stub
    spool_path = str(tmp_path / "bridge.sqlite")
    recorder.rule = lambda req, seen: 200 if req.path != "/api/gui-update" else 503
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_PRODUCER, url, spool_path], env=env)
    try:

        def spooled() -> int:
            if not os.path.exists(spool_path):
                return 0
            with Spool(spool_path) as spool:
                return len(spool.peek(100))

        wait_for(lambda: spooled() == 4, timeout=10)  # 3 log batches + the final progress
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)

    recorder.rule = lambda req, seen: 200
    bridge = make_bridge(spool_path=spool_path)
    bridge.start()
    wait_for(lambda: len(recorder.updates()) == 4)

    assert recorder.log_lines() == [f"killed {n}" for n in range(25)]
    assert {"type": "overall_progress", "current": 100, "total": 100} in recorder.messages()
    assert [m["sequence"] for m in recorder.messages("log_batch")] == [0, 1, 2]


_STANDALONE = """
import importlib.util, sys
sys.path.insert(0, sys.argv[1])
assert importlib.util.find_spec("goliat_monitor") is None, "goliat_monitor must not be importable here"
import bridge, vendored.bridge
# each layout resolves its siblings in its own place: top-level beside it, or inside its package
for module, prefix in ((bridge, ""), (vendored.bridge, "vendored.")):
    names = (module.delivery.__name__, module.outbox.__name__, module.outbox.delivery.__name__)
    assert names == (prefix + "delivery", prefix + "outbox", prefix + "delivery"), names
for module, spool in ((bridge, None), (vendored.bridge, sys.argv[3])):
    b = module.WebGUIBridge(sys.argv[2], "203.0.113.7", spool_path=spool, retry_base=0.02, retry_cap=0.1)
    b.start()
    b.enqueue({"type": "status", "message": module.__name__, "log_type": "info"})
    b.enqueue({"type": "finished", "message": "Study finished successfully"})
    b.stop(timeout=10)
    assert b.sent == 2, (module.__name__, b.sent, b.dropped, b.rejected)
print(sorted(name for name in sys.modules if "goliat" in name))
"""


def test_the_bridge_works_from_three_copied_files_without_goliat_monitor(
    stub: tuple[Recorder, str], tmp_path: Path
) -> None:
    """GOLIAT copies bridge.py, delivery.py and outbox.py side by side, top-level or into a package."""
    recorder, url = stub
    source = Path(bridge_module.__file__).parent
    package = tmp_path / "vendored"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for folder in (tmp_path, package):
        for name in ("bridge.py", "delivery.py", "outbox.py"):
            shutil.copy(source / name, folder / name)
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    # -I: no PYTHONPATH, no user site, not the script's folder; -S: no site-packages at all.
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _STANDALONE, str(tmp_path), url, str(tmp_path / "spool.sqlite")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # nothing named goliat* was imported
    assert recorder.log_lines() == ["bridge", "vendored.bridge"]
    assert [m["type"] for m in recorder.messages()] == ["log_batch", "finished"] * 2
