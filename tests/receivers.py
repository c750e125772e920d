"""Real local notification receivers: an HTTP server for `json://` targets, an SMTP server for `mailto://`.

Nothing leaves the machine: both listen on 127.0.0.1 and record what they got.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

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
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
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
