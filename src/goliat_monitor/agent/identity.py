"""Who this agent is: GOLIAT's machine id, plus an agent id that survives restarts.

GOLIAT names a machine by its public IP (`cli/run_worker.py`, `get_machine_id`), so the dashboard
shows the same name for the agent and for a GOLIAT started by hand on that VM. Behind one NAT
address several VMs share that IP, so each agent also keeps a uuid in its work dir and sends it
as `agentId`: two agents stay two workers, and a restarted agent is the same worker again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

__all__ = [
    "PUBLIC_IP_URL",
    "WorkDirBusyError",
    "claim_work_dir",
    "get_machine_id",
    "load_agent_id",
    "local_ip",
    "public_ip",
    "release_work_dir",
]

log = logging.getLogger(__name__)

PUBLIC_IP_URL = "https://api.ipify.org"
AGENT_ID_FILE = "agent-id"
LOCK_FILE = "agent.lock"


def public_ip(url: str = PUBLIC_IP_URL, attempts: int = 3, timeout: float = 10.0) -> str | None:
    """The public IP as GOLIAT gets it (api.ipify.org, 3 tries, 10 s each), None if unreachable."""
    for _ in range(attempts):
        try:
            response = httpx.get(url, timeout=timeout)
        except httpx.HTTPError:
            continue
        if response.status_code == 200 and response.text.strip():
            return response.text.strip()
    return None


def local_ip() -> str | None:
    """The address of the interface that routes to the internet (a UDP connect sends nothing)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("8.8.8.8", 80))
            return str(sock.getsockname()[0])
    except OSError:
        return None


def get_machine_id(
    lookup_public_ip: Callable[[], str | None] = public_ip,
    lookup_local_ip: Callable[[], str | None] = local_ip,
) -> str:
    """GOLIAT's machine id: public IP, else local IP, else hostname. Lookups are injectable for tests."""
    return lookup_public_ip() or lookup_local_ip() or socket.gethostname()


def load_agent_id(work_dir: Path) -> str:
    """The agent's uuid, created on first start and read back ever after."""
    path = work_dir / AGENT_ID_FILE
    with contextlib.suppress(FileNotFoundError):
        text = path.read_text(encoding="utf-8").strip()
        with contextlib.suppress(ValueError):
            return str(uuid.UUID(text))
        log.warning("ignoring a malformed agent id in %s", path)
    agent_id = str(uuid.uuid4())
    work_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(agent_id + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return agent_id


class WorkDirBusyError(RuntimeError):
    """Another live agent uses this work dir (it would share its id, spool and run folders)."""


def _process_started(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


def claim_work_dir(work_dir: Path) -> None:
    """Record this process as the work dir's agent; refuse if the recorded one is still alive.

    A pid file checked with psutil works the same on Windows and POSIX; the start time guards
    against a reused pid after a reboot or a SIGKILL.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / LOCK_FILE
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
        held = json.loads(path.read_text(encoding="utf-8"))
        pid, started = int(held["pid"]), float(held["started"])
        if pid != os.getpid() and _process_started(pid) == started:
            raise WorkDirBusyError(f"another agent (pid {pid}) is using {work_dir}; give each agent its own")
    started_now = _process_started(os.getpid())
    path.write_text(json.dumps({"pid": os.getpid(), "started": started_now}), encoding="utf-8")


def release_work_dir(work_dir: Path) -> None:
    """Remove the pid file if it is ours."""
    path = work_dir / LOCK_FILE
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError, OSError):
        if int(json.loads(path.read_text(encoding="utf-8"))["pid"]) == os.getpid():
            path.unlink()
