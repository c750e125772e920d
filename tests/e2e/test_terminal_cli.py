"""`goliat-monitor status | logs | watch` as real subprocesses against a real running server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.accounts import private_server
from tests.api.helpers import create_study, gui, heartbeat, log_batch
from tests.conftest import LiveServer
from tests.support import wait_for

pytestmark = pytest.mark.slow

ENV = {
    **{
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GOLIAT_MONITOR") and k != "GOLIAT_MONITORING_URL"
    },
    "COLUMNS": "200",
    "PYTHONUNBUFFERED": "1",
}


def cli(server: LiveServer, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "goliat_monitor", *args, "--server", server.url],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Running:
    """A CLI process whose output lines are collected as they come."""

    def __init__(self, server: LiveServer, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "goliat_monitor", *args, "--server", server.url],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self.lines), daemon=True),
            threading.Thread(target=self._pump, args=(self.process.stderr, self.errors), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _pump(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_for_line(self, text: str, timeout: float = 30) -> str:
        return wait_for(
            lambda: next((line for line in self.lines if text in line), None),
            timeout=timeout,
            what=f"{text!r} in the output (have {self.lines[-5:]}, stderr {self.errors[-5:]})",
        )

    def exit_code(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout=5)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for thread in self._threads:
            thread.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def running() -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(server: LiveServer, *args: str) -> Running:
        started.append(Running(server, *args))
        return started[-1]

    yield start
    for process in started:
        process.stop()


def say(server: LiveServer, machine: str, sequence: int, lines: list[tuple[str, str]]) -> None:
    assert gui(server.client, log_batch(sequence, lines), machine=machine).status_code == 200


def test_status_lists_workers_and_active_studies(server: LiveServer) -> None:
    heartbeat(server.client, machine="10.5.0.1", hostname="gpu-node-1")
    heartbeat(server.client, machine="10.5.0.2", hostname="gpu-node-2")
    active = create_study(server.client, name="campaign-a", count=2)
    done = create_study(server.client, name="campaign-done", count=1)
    assignment = done["assignments"][0]["id"]
    server.client.post(f"/api/assignments/{assignment}/claim", json={"machineId": "10.5.0.2"})
    gui(server.client, {"type": "finished", "message": "Study finished successfully"}, machine="10.5.0.2")

    result = cli(server, "status", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"workers", "superStudies"}
    assert data["workers"] == server.client.get("/api/workers").json()  # the API's own fields
    assert {w["hostname"] for w in data["workers"]} == {"gpu-node-1", "gpu-node-2"}
    assert [s["id"] for s in data["superStudies"]] == [active["id"]]
    assert {"masterProgress", "totalAssignments", "status"} <= set(data["superStudies"][0])

    table = cli(server, "status")
    assert table.returncode == 0, table.stderr
    assert "gpu-node-1" in table.stdout and "gpu-node-2" in table.stdout
    assert "campaign-a" in table.stdout and "campaign-done" not in table.stdout


def test_logs_print_recent_lines_filtered_and_escaped(server: LiveServer) -> None:
    heartbeat(server.client, machine="10.5.1.1", hostname="gpu-logs")
    say(
        server,
        "10.5.1.1",
        0,
        [
            ("Setting up simulation", "info"),
            ("\x1b[2J\x1b]0;owned\x07 CUDA error \u202eevil", "error"),
            ("Power balance off", "warning"),
        ],
    )
    result = cli(server, "logs", "gpu-logs")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\u202e" not in result.stdout
    assert "\\x1b[2J\\x1b]0;owned\\x07 CUDA error \\u202eevil" in result.stdout
    assert [line.split()[1] for line in result.stdout.splitlines()] == ["info", "error", "warning"]

    errors = cli(server, "logs", "gpu-logs", "--type", "error")
    assert len(errors.stdout.splitlines()) == 1 and "CUDA error" in errors.stdout
    grep = cli(server, "logs", "10.5.1.1", "--grep", "power BALANCE", "--json")
    lines = [json.loads(line) for line in grep.stdout.splitlines()]
    assert [line["message"] for line in lines] == ["Power balance off"] and lines[0]["logType"] == "warning"
    missing = cli(server, "logs", "no-such-worker")
    assert missing.returncode == 1 and "no worker called" in missing.stderr


def test_logs_follow_prints_a_line_posted_after_it_started(
    server: LiveServer, running: Callable[..., Running]
) -> None:
    heartbeat(server.client, machine="10.5.2.1", hostname="gpu-follow")
    say(server, "10.5.2.1", 0, [("before the follow", "info")])
    follower = running(server, "logs", "gpu-follow", "--follow", "--type", "info", "--type", "error")
    follower.wait_for_line("before the follow")
    # The live stream opens just after the recent lines are printed: post until a line arrives.
    sequence = 0

    def posted_line_arrived() -> str | None:
        nonlocal sequence
        sequence += 1
        lines = [("a warning left out", "warning"), (f"after the follow {sequence} \x1b[31m", "error")]
        say(server, "10.5.2.1", sequence, lines)
        return next((line for line in follower.lines if "after the follow" in line), None)

    line = wait_for(posted_line_arrived, timeout=30, what="a line posted after --follow started", every=0.5)
    assert "\x1b" not in line and "\\x1b[31m" in line
    assert not any("left out" in line for line in follower.lines)
    assert follower.process.poll() is None  # still following


def study_with_watcher(
    server: LiveServer, running: Callable[..., Running], name: str, machine: str
) -> tuple[str, Running]:
    study = create_study(server.client, name=name, count=1, maxAttempts=1)
    assignment = study["assignments"][0]["id"]
    watcher = running(server, "watch", name)
    watcher.wait_for_line(f"{name} PENDING")
    heartbeat(server.client, machine=machine)
    assert (
        server.client.post(f"/api/assignments/{assignment}/claim", json={"machineId": machine}).status_code
        == 200
    )
    gui(server.client, {"type": "overall_progress", "current": 40, "total": 100}, machine=machine)
    watcher.wait_for_line("0:RUNNING:40%")
    return study["id"], watcher


def test_watch_exits_0_when_the_study_completes(server: LiveServer, running: Callable[..., Running]) -> None:
    _, watcher = study_with_watcher(server, running, "watch-ok", "10.5.3.1")
    gui(server.client, {"type": "finished", "message": "Study finished successfully"}, machine="10.5.3.1")
    assert watcher.exit_code() == 0
    assert any("watch-ok COMPLETED" in line for line in watcher.errors + watcher.lines)


def test_watch_exit_codes_for_failed_cancelled_and_deleted(
    server: LiveServer, running: Callable[..., Running]
) -> None:
    _, failing = study_with_watcher(server, running, "watch-fail", "10.5.4.1")
    gui(server.client, {"type": "finished", "message": "Study finished with errors"}, machine="10.5.4.1")
    assert failing.exit_code() == 1
    assert any("watch-fail FAILED" in line for line in failing.errors)

    cancelled, cancelling = study_with_watcher(server, running, "watch-cancel", "10.5.4.2")
    assert server.client.post(f"/api/super-studies/{cancelled}/cancel").status_code == 200
    gui(server.client, {"type": "finished", "message": "Study finished with errors"}, machine="10.5.4.2")
    assert cancelling.exit_code() == 3

    deleted, deleting = study_with_watcher(server, running, "watch-delete", "10.5.4.3")
    assert server.client.delete(f"/api/super-studies/{deleted}").status_code == 200
    assert deleting.exit_code() == 4

    assert cli(server, "watch", "no-such-study").returncode == 4
    unreachable = subprocess.run(
        [sys.executable, "-m", "goliat_monitor", "watch", "x", "--server", "http://127.0.0.1:9"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unreachable.returncode == 5 and "cannot reach" in unreachable.stderr


def test_the_live_stream_reconnects_with_the_last_event_id() -> None:
    """A stream that drops is opened again with `Last-Event-ID` set to the last id received (the
    server then replays what was missed). A real HTTP server that ends each stream after one event
    stands in for a server restart or a proxy timeout."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from goliat_monitor.cli.remote import Remote, follow_events

    seen_ids: list[str | None] = []

    class Events(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen_ids.append(self.headers.get("Last-Event-ID"))
            number = len(seen_ids)
            body = f'retry: 50\nid: epoch:{number}.{number * 10}\nevent: logs\ndata: {{"n": {number}}}\n\n'
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *_args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Events)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    remote = Remote(f"http://127.0.0.1:{httpd.server_address[1]}", None)
    try:
        events = follow_events(remote, {"logs": "w"})
        got = [next(events) for _ in range(4)]
    finally:
        remote.close()
        httpd.shutdown()
        httpd.server_close()
    assert [(e.event, e.data) for e in got] == [
        ("logs", {"n": 1}),
        ("reconnected", None),
        ("logs", {"n": 2}),
        ("reconnected", None),
    ]
    assert seen_ids[:2] == [None, "epoch:1.10"]


def test_a_private_server_takes_a_viewer_token(
    make_server: Callable[..., LiveServer], running: Callable[..., Running]
) -> None:
    server = private_server(make_server)
    admin = {"Authorization": "Bearer gmt_admin-secret"}
    assert (
        server.client.post(
            "/api/heartbeat", json={"machineId": "10.5.5.1", "hostname": "gpu-private"}, headers=admin
        ).status_code
        == 200
    )
    refused = cli(server, "status")
    assert refused.returncode == 1 and "401" in refused.stderr
    viewer = ("--token", "gmt_viewer-secret")
    listed = cli(server, "status", "--json", *viewer)
    assert listed.returncode == 0, listed.stderr
    assert [w["hostname"] for w in json.loads(listed.stdout)["workers"]] == ["gpu-private"]
    follower = running(server, "logs", "gpu-private", "--follow", *viewer)
    sequence = 0

    def arrived() -> str | None:
        nonlocal sequence
        sequence += 1
        body = {
            "machineId": "10.5.5.1",
            "message": log_batch(sequence, [(f"private line {sequence}", "info")]),
        }
        assert server.client.post("/api/gui-update", json=body, headers=admin).status_code == 200
        return next((line for line in follower.lines if "private line" in line), None)

    wait_for(arrived, timeout=30, what="a line through the live stream with a viewer token", every=0.5)
