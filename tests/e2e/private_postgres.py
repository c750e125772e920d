"""A PostgreSQL server of a test's own, on a free port in a temp dir, that the test may stop and start.

Outage tests restart their database; they must never touch the shared server other tests use.
The server binaries (`initdb`, `pg_ctl`) come from `GOLIAT_MONITOR_PG_BIN`, else the PATH, else
Debian's versioned folders. PostgreSQL refuses to run as root, so under root the cluster is owned
by and run as the `postgres` OS user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support import free_port

DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def find_server_binaries() -> Path | None:
    """The folder holding `initdb` and `pg_ctl`, or None when this machine has no PostgreSQL server."""
    candidates: list[Path] = []
    if os.environ.get("GOLIAT_MONITOR_PG_BIN"):
        candidates.append(Path(os.environ["GOLIAT_MONITOR_PG_BIN"]))
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    candidates += [Path(p) for p in sorted(glob.glob(DEBIAN_BIN_GLOB), reverse=True)]
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


class PrivatePostgres:
    """One throw-away cluster: `start`, `stop` (as a restart or crash would), `start` again, `remove`."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.port = free_port()
        # Not pytest's tmp_path: its parents are private to root, and the server may run as postgres.
        self.root = Path(tempfile.mkdtemp(prefix="goliat-monitor-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, user="postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def libpq_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "30", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """`fast` ends every session at once, as a restart or failover does; `immediate` is a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        if self.is_running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        argv = [str(self.binaries / program), *args]
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()}\n{log}")
