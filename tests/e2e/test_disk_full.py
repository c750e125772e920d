"""A full disk answers 507 with what ran out, corrupts nothing, and writes resume once there is room.

For real: the data folder (SQLite), or a PostgreSQL tablespace holding the whole database, is on
a 40 MB tmpfs mounted for the test. Mounting needs root; CI runs as root on this kind of machine,
so a machine where the mount fails fails the test rather than skipping it. A ballast file fills
the disk to the last byte, and deleting it gives the space back.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.e2e.private_postgres import PrivatePostgres, find_server_binaries
from tests.support import free_port, spawn_goliat_monitor, stop_group, wait_for

pytestmark = pytest.mark.slow

DISK_MB = 40
UPLOAD_MB = 60
LINE = "x" * 900


@dataclass
class SmallDisk:
    path: Path

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.path).free

    def fill(self) -> Path:
        """Write a ballast file until the disk has not one byte left."""
        ballast = self.path / "ballast"
        with ballast.open("wb", buffering=0) as out:  # unbuffered: nothing left to flush at close
            for size in (1 << 20, 1 << 12, 1):
                block = b"\0" * size
                try:
                    while True:
                        out.write(block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
        assert self.free_bytes() < 4096
        return ballast


@pytest.fixture
def small_disk() -> Iterator[SmallDisk]:
    # Not pytest's tmp_path: its parents are private to root, and PostgreSQL runs as postgres.
    mount_point = Path(tempfile.mkdtemp(prefix="goliat-monitor-small-disk-"))
    mount_point.chmod(0o755)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        mount_point.rmdir()
        pytest.fail(
            f"cannot mount a {DISK_MB} MB tmpfs (uid {os.getuid()}): {done.stderr.strip()}. This test "
            "needs root, as CI has on this kind of machine."
        )
    try:
        yield SmallDisk(mount_point)
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        mount_point.rmdir()


@dataclass
class Server:
    url: str
    client: httpx.Client


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    processes = []
    clients: list[httpx.Client] = []

    def start(data_dir: Path, database_url: str | None = None) -> Server:
        port = free_port()
        args = ["serve", "--port", str(port), "--data-dir", str(data_dir)]
        if database_url:
            args += ["--database-url", database_url]
        processes.append(spawn_goliat_monitor(args, tmp_path / "server.log"))
        url = f"http://127.0.0.1:{port}"
        client = httpx.Client(base_url=url, timeout=30)
        clients.append(client)

        def healthy() -> bool:
            try:
                return client.get("/api/health").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=60, what="the server to start")
        return Server(url, client)

    yield start
    for client in clients:
        client.close()
    for process in processes:
        stop_group(process, 15)


def log_batch(client: httpx.Client, sequence: int) -> httpx.Response:
    lines = [{"message": f"line {sequence}.{n} {LINE}", "log_type": "info"} for n in range(20)]
    body = {"machineId": "10.9.0.1", "message": {"type": "log_batch", "logs": lines, "sequence": sequence}}
    return client.post("/api/gui-update", json=body)


def upload(client: httpx.Client, assignment_id: str, size: int) -> httpx.Response:
    return client.post(
        f"/api/assignments/{assignment_id}/results",
        data={"relativePath": "far_field/thelonious/700MHz/x"},
        files=[("files", ("big.bin", b"\1" * size, "application/octet-stream"))],
    )


def assignment(client: httpx.Client) -> str:
    body = {"name": "disk", "assignments": [{"splitConfig": {"frequencies_mhz": [700]}, "status": "PENDING"}]}
    study = client.post("/api/super-studies", json=body)
    assert study.status_code == 200, study.text
    return str(study.json()["assignments"][0]["id"])


def write_until_refused(client: httpx.Client, first: int) -> tuple[int, httpx.Response]:
    """Log batches until one is refused (the WAL or table must grow first); returns the next
    sequence and the refusal."""
    for sequence in range(first, first + 5000):
        answer = log_batch(client, sequence)
        if answer.status_code != 200:
            return sequence, answer
    raise AssertionError("5,000 log batches fitted on a full disk")


def stored_lines(client: httpx.Client, worker_id: str) -> list[str]:
    page = client.get(f"/api/workers/{worker_id}/logs", params={"limit": 2000}).json()
    return [line["message"].split(" ")[1] for line in page["logs"]]


def check_full_disk_cycle(server: Server, disk: SmallDisk, ran_out_database: str) -> None:
    client = server.client
    target = assignment(client)
    assert client.post("/api/heartbeat", json={"machineId": "10.9.0.1"}).status_code == 200
    assert log_batch(client, 0).status_code == 200
    worker_id = client.get("/api/workers").json()[0]["id"]

    # An upload that does not fit: 507, the data folder, and nothing left behind.
    free_before = disk.free_bytes()
    too_big = upload(client, target, UPLOAD_MB << 20)
    assert too_big.status_code == 507, too_big.text
    body = too_big.json()
    assert body["ranOut"] == "data folder" and "no space left" in body["error"], body
    assert disk.free_bytes() >= free_before - (1 << 20)  # the partial file was removed

    # The disk full to the last byte: log writes answer 507 naming the database, never 500.
    ballast = disk.fill()
    sequence, refused = write_until_refused(client, 1)
    assert refused.status_code == 507, refused.text
    assert refused.json()["ranOut"] == "database", refused.json()
    assert ran_out_database in refused.json()["error"]
    assert log_batch(client, sequence).status_code == 507  # still full: still 507
    small = upload(client, target, 10_000)
    assert small.status_code == 507 and small.json()["ranOut"] in ("data folder", "database"), small.text
    stored = stored_lines(client, worker_id)

    # Space returns: the same writes succeed, and what was refused was never half stored.
    ballast.unlink()
    wait_for(lambda: log_batch(client, sequence).status_code == 200, timeout=30, what="writes to resume")
    assert log_batch(client, sequence + 1).status_code == 200
    assert upload(client, target, 10_000).status_code == 200
    after = stored_lines(client, worker_id)
    expected = [f"{s}.{n}" for s in range(sequence) for n in range(20)]
    assert stored == expected
    assert after == expected + [f"{s}.{n}" for s in (sequence, sequence + 1) for n in range(20)]


def test_sqlite_on_a_full_disk_answers_507_and_resumes(small_disk: SmallDisk, start_server: Any) -> None:
    data_dir = small_disk.path / "data"
    server = start_server(data_dir)
    check_full_disk_cycle(server, small_disk, "goliat-monitor.sqlite3")
    import sqlite3

    with sqlite3.connect(data_dir / "goliat-monitor.sqlite3") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    binaries = find_server_binaries()
    if binaries is None:
        pytest.fail("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
    pg = PrivatePostgres(binaries)
    try:
        pg.start()
        yield pg
    finally:
        pg.remove()


def test_postgresql_on_a_full_disk_answers_507_and_resumes(
    small_disk: SmallDisk, private_pg: PrivatePostgres, start_server: Any
) -> None:
    """The whole database in a tablespace on the small disk (its WAL stays on the big one); the
    artifacts in the data folder on the same small disk."""
    space = small_disk.path / "tablespace"
    space.mkdir()
    shutil.chown(space, user="postgres")
    with psycopg.connect(private_pg.libpq_url(), autocommit=True) as conn:
        conn.execute(f"CREATE TABLESPACE small LOCATION '{space}'")
        conn.execute("CREATE DATABASE goliat TABLESPACE small")
    server = start_server(small_disk.path / "data", private_pg.url("goliat"))
    check_full_disk_cycle(server, small_disk, "PostgreSQL")
