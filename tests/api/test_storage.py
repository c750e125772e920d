"""Storage on the dashboard: the database's size, the artifact folder's (walked, cached) and the
data folder's free space, on both databases."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from goliat_monitor.server import storage
from tests.api.helpers import create_study
from tests.conftest import LiveServer


def upload(server: LiveServer, assignment_id: str, name: str, size: int) -> None:
    answer = server.client.post(
        f"/api/assignments/{assignment_id}/results",
        data={"relativePath": "far_field/thelonious/700MHz/x"},
        files=[("files", (name, b"\1" * size, "application/octet-stream"))],
    )
    assert answer.status_code == 200, answer.text


def test_storage_reports_database_artifacts_and_free_space(server: LiveServer) -> None:
    assignment = create_study(server.client, count=1)["assignments"][0]["id"]
    upload(server, assignment, "a.bin", 300_000)
    report = server.client.get("/api/storage").json()
    assert report["database"]["kind"] == ("sqlite" if server.context.db.is_sqlite else "postgresql")
    assert report["database"]["bytes"] > 50_000  # the schema alone is tens of pages
    assert report["artifacts"]["kind"] == "folder"
    assert report["artifacts"]["bytes"] == 300_000
    usage = shutil.disk_usage(server.settings.data_dir)
    assert report["dataDir"]["totalBytes"] == usage.total
    assert abs(report["dataDir"]["freeBytes"] - usage.free) < 64 << 20
    upload(server, assignment, "b.bin", 200_000)  # cached: the folder is walked once per TTL
    assert server.client.get("/api/storage").json()["artifacts"]["bytes"] == 300_000


def test_the_folder_is_walked_once_per_ttl(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "one").write_bytes(b"1" * 1000)
    (tmp_path / "top").write_bytes(b"2" * 10)
    probe = storage.StorageProbe(ttl_s=3600)
    assert asyncio.run(probe.folder_bytes(tmp_path))[0] == 1010
    (tmp_path / "a" / "more").write_bytes(b"3" * 5)
    assert asyncio.run(probe.folder_bytes(tmp_path))[0] == 1010
    probe.ttl_s = 0.0
    assert asyncio.run(probe.folder_bytes(tmp_path))[0] == 1015


def test_the_overview_shows_storage(server: LiveServer) -> None:
    page = server.client.get("/")
    assert page.status_code == 200
    assert 'id="storage"' in page.text and "Free disk (data folder)" in page.text
    free = storage.human_bytes(shutil.disk_usage(server.settings.data_dir).free)
    assert free.split()[1] in page.text


def test_human_bytes() -> None:
    assert storage.human_bytes(999) == "999 B"
    assert storage.human_bytes(1_500) == "1.5 KB"
    assert storage.human_bytes(40_000_000) == "40.0 MB"
    assert storage.human_bytes(None) == "?"
