"""Small helpers every kind of test uses: waiting for a condition, a free port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
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


def spawn_goliat_monitor(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """`goliat-monitor ARGS` in a process group of its own, its output appended to `log`.

    Its own group, so that a test can end an agent together with the study it runs.
    """
    with log.open("ab") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "goliat_monitor", *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def stop_group(process: subprocess.Popen[bytes], sig: int) -> None:
    """Send `sig` to the process's group and wait; SIGKILL the group if it does not end in 20 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
