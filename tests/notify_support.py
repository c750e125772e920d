"""For the notification tests: real local receivers (an HTTP server for `json://` targets, an
SMTP server for `mailto://`; both on 127.0.0.1, nothing leaves the machine) and servers that can
be restarted, or run as two replicas, on one database.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from aiosmtpd.controller import Controller

from goliat_monitor.settings import ServerSettings
from tests.api.helpers import gui
from tests.conftest import FakeClock, LiveServer, start_server
from tests.support import free_port


class Receiver:
    """A webhook: records every JSON body it is POSTed; answers the next of `codes`, then 200."""

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []
        self.refused = 0
        self.codes: list[int] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    code = receiver.codes.pop(0) if receiver.codes else 200
                    if code == 200:
                        receiver.got.append(json.loads(body))
                    else:
                        receiver.refused += 1
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def titles(self) -> list[str]:
        with self._lock:
            return [str(item.get("title")) for item in self.got]

    def with_title(self, part: str) -> list[dict[str, Any]]:
        with self._lock:
            return [item for item in self.got if part in str(item.get("title"))]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


class SmtpServer:
    def __init__(self) -> None:
        self.mailbox = Mailbox()
        self.port = free_port()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def url(self, to: str = "ops@example.com") -> str:
        return f"mailto://127.0.0.1:{self.port}?from=monitor@example.com&to={to}"

    def subjects(self) -> list[str]:
        return [str(message["Subject"]) for message in self.mailbox.messages]


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    found = SmtpServer()
    yield found
    found.controller.stop()


PUBLIC = "https://monitor.example.org"


@dataclass
class Running:
    server: LiveServer
    stop: Callable[[], None]

    @property
    def client(self) -> httpx.Client:
        return self.server.client


@pytest.fixture
def start(tmp_path: Path, backend: str | None) -> Iterator[Callable[..., Running]]:
    """Servers on the test's database: the same one for every call, so a second call is a
    restart (or, running at once, a second replica). Delivery and detection run every 0.2 s
    (`tests/conftest.py`)."""
    running: list[Running] = []

    def make(clock: FakeClock | None = None, **overrides: Any) -> Running:
        settings = ServerSettings(
            data_dir=tmp_path / "data", database_url=backend, public_url=PUBLIC, **overrides
        )
        clock = clock or FakeClock()
        url, app, stop = start_server(settings, clock)
        client = httpx.Client(base_url=url, timeout=30)
        live = LiveServer(url, app.state.context, clock, client, app.state.loop)

        def stop_all() -> None:
            client.close()
            stop()

        found = Running(live, stop_all)
        running.append(found)
        return found

    yield make
    for found in running:
        found.stop()


def pull(client: httpx.Client, machine: str) -> dict[str, Any]:
    response = client.get("/api/assignment", params={"machineId": machine})
    assert response.status_code == 200, response.text
    return cast(dict[str, Any], response.json())


def finish(client: httpx.Client, machine: str, **ending: Any) -> None:
    message = {"type": "finished", "message": "Study finished successfully", **ending}
    assert gui(client, message, machine=machine).status_code == 200


def history(client: httpx.Client) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], client.get("/api/notifications").json()["notifications"])
