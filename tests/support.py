"""Small helpers every kind of test uses: waiting for a condition, a free port."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T | None], timeout: float = 30.0, what: str = "condition", every: float = 0.02
) -> T:
    """Poll `condition` until it returns something truthy, and return that; fail after `timeout` s.

    Tests wait for what they assert on, never for a fixed time: a sleep is either too short on a
    busy machine or longer than needed everywhere else.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
