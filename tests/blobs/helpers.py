"""A small campaign's artifacts, uploaded through the real HTTP API and read back the same way."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from urllib.parse import quote

from goliat_monitor.blobs.s3 import PART_SIZE
from tests.api.helpers import create_study
from tests.conftest import LiveServer
from tests.goliat_client import multipart

RUN = "far_field/thelonious/700MHz/environmental_x_pos_theta"
MACHINE = "203.0.113.41"
TABS = {"Timings": b"\xff\xd8\xff\xe0timings\xff\xd9", "Disk_I/O": b"\xff\xd8\xff\xe0disk\xff\xd9"}


@dataclass
class Campaign:
    study_id: str
    assignment_id: str
    worker_id: str
    files: dict[str, bytes]  # path inside the study -> bytes


def upload_campaign(server: LiveServer) -> Campaign:
    """Result files (one larger than an upload part, so it goes up in parts) and two screenshots."""
    study = create_study(server.client, count=2)
    assignment_id = study["assignments"][0]["id"]
    files = {
        f"{RUN}/sar_results.json": b'{"peak_sar_10g_W_kg": 0.012}',
        f"{RUN}/output.h5": os.urandom(PART_SIZE + 1234),
        "logs/verbose.log": b"line\n" * 1000,
    }
    for path, data in files.items():
        folder, _, name = path.rpartition("/")
        response = server.client.post(
            f"/api/assignments/{assignment_id}/results",
            data={"relativePath": folder},
            files=[("files", (name, data, "application/octet-stream"))],
        )
        assert response.status_code == 200, response.text
    body, content_type = multipart({"machineId": MACHINE}, list(TABS.items()))
    answer = server.client.post("/api/gui-screenshots", content=body, headers={"content-type": content_type})
    assert answer.status_code == 200 and sorted(answer.json()["stored"]) == sorted(TABS), answer.text
    (worker,) = server.client.get("/api/workers").json()
    return Campaign(study["id"], assignment_id, worker["id"], files)


def check_campaign_reads_back(server: LiveServer, campaign: Campaign) -> None:
    """Every way a person reads artifacts: listing, single file, both zips, screenshots by tab."""
    listing = server.client.get(f"/api/super-studies/{campaign.study_id}/results/list").json()
    assert {item["path"]: (item["size"], item["sha256"]) for item in listing["files"]} == {
        path: (len(data), hashlib.sha256(data).hexdigest()) for path, data in campaign.files.items()
    }
    for path, data in campaign.files.items():
        got = server.client.get(
            f"/api/assignments/{campaign.assignment_id}/results/file", params={"path": path}
        )
        assert got.status_code == 200 and got.content == data, path
        assert got.headers["content-length"] == str(len(data))
    for url in (
        f"/api/assignments/{campaign.assignment_id}/results/download",
        f"/api/super-studies/{campaign.study_id}/results/download",
    ):
        response = server.client.get(url)
        assert response.status_code == 200, url
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            assert archive.testzip() is None
            assert {name: archive.read(name) for name in archive.namelist()} == campaign.files
    for tab, data in TABS.items():
        shot = server.client.get(f"/api/workers/{campaign.worker_id}/screenshots/{quote(tab, safe='')}")
        assert shot.status_code == 200 and shot.content == data, tab
