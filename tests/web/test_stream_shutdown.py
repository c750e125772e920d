"""Shutting the server down with pages open: their streams end at once and nothing is left running."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from goliat_monitor.server import hub
from goliat_monitor.server.app import create_app
from goliat_monitor.server.sse import CLOSE
from goliat_monitor.settings import ServerSettings
from tests.support import free_port, wait_for
from tests.web.sse import SseReader


def test_the_app_lifespan_ends_open_streams_and_stops_the_hub(tmp_path: Path) -> None:
    app = create_app(ServerSettings(data_dir=tmp_path))

    async def open_then_shut_down() -> tuple[int, int, bool]:
        async with app.router.lifespan_context(app):
            client = hub.get_hub(app).connect(workers=["all"])
            subscribed = app.state.context.events.subscriber_count
        closed = not client.queue.empty() and client.queue.get_nowait() is CLOSE
        return subscribed, app.state.context.events.subscriber_count, closed

    # A thread of its own: the browser tests keep an event loop running on the main thread.
    with ThreadPoolExecutor(1) as pool:
        subscribed_while_open, subscribed_after, stream_told_to_close = pool.submit(
            asyncio.run, open_then_shut_down()
        ).result(timeout=30)
    assert subscribed_while_open == 1
    assert stream_told_to_close
    assert subscribed_after == 0


def test_sigterm_ends_an_open_stream_promptly_and_the_server_exits(tmp_path: Path) -> None:
    """What systemd or Docker do at shutdown: open pages must not hold the server up."""
    port = free_port()
    command = [sys.executable, "-m", "goliat_monitor", "serve", "--port", str(port)]
    command += ["--data-dir", str(tmp_path), "--log-level", "info"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert process.poll() is None, "the server exited"
            try:
                return httpx.get(url + "/api/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout=30, what="the server to start")
        with SseReader(url, {"workers": "all"}) as sse:
            sse.until(lambda e: e.event == "hello")
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            # Ended (cleanly or cut); a stream left hanging would raise ReadTimeout instead.
            with pytest.raises((EOFError, httpx.RemoteProtocolError)):
                while True:
                    sse.next()
            ended_after = time.monotonic() - signalled
        assert ended_after < 2.0
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells of it.
        assert process.wait(timeout=5) == -signal.SIGTERM
    finally:
        process.kill()
        _, log = process.communicate()
    assert "Application shutdown complete" in log and "Traceback" not in log, log
