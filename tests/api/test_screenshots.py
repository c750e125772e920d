"""Screenshots as GOLIAT's real client sends them (see `tests.goliat_client`).

Every tab is stored and read back by its URL-encoded field name over real HTTP; a bad part is
dropped alone; a field name is never a path.
"""

from __future__ import annotations

import http.client
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from goliat_monitor.domain.paths import tab_key
from tests.conftest import LiveServer
from tests.goliat_client import GOLIAT_FIELDS, GOLIAT_TABS, multipart

MACHINE = "203.0.113.40"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def jpeg(marker: str) -> bytes:
    """A JFIF-headed body, different per tab so a mixed-up read-back shows."""
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + marker.encode() + b"\xff\xd9"


def post_screenshots(
    server: LiveServer, files: list[tuple[str, bytes]], machine: str = MACHINE
) -> httpx.Response:
    body, content_type = multipart({"machineId": machine}, files)
    return server.client.post("/api/gui-screenshots", content=body, headers={"content-type": content_type})


def goliat_upload(server: LiveServer) -> httpx.Response:
    """What GOLIAT's client posts for its whole GUI."""
    return post_screenshots(server, [(field, jpeg(field)) for field in GOLIAT_FIELDS])


def only_worker_id(server: LiveServer) -> str:
    (worker,) = server.client.get("/api/workers").json()
    return str(worker["id"])


def shot_url(worker_id: str, field: str) -> str:
    return f"/api/workers/{worker_id}/screenshots/{quote(field, safe='')}"


def raw_get(server: LiveServer, path: str) -> tuple[int, dict[str, str], bytes]:
    """A GET whose request line is exactly `path`: no client normalises or re-encodes it."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_every_goliat_tab_is_stored_and_read_back_by_its_encoded_field_name(server: LiveServer) -> None:
    fields = GOLIAT_FIELDS
    answer = goliat_upload(server)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"success": True, "stored": fields, "dropped": []}

    worker_id = only_worker_id(server)
    listed = server.client.get(f"/api/workers/{worker_id}").json()["screenshots"]
    assert {s["tab"]: s["label"] for s in listed} == dict(zip(fields, GOLIAT_TABS, strict=True))
    assert all(s["size"] == len(jpeg(s["tab"])) for s in listed)

    assert shot_url(worker_id, "Disk_I/O").endswith("/screenshots/Disk_I%2FO")
    for field in fields:
        status, headers, content = raw_get(server, shot_url(worker_id, field))
        assert (status, content) == (200, jpeg(field)), field
        assert headers["content-type"] == "image/jpeg"
        assert headers["x-content-type-options"] == "nosniff"


def test_a_newer_upload_replaces_each_tab_and_keeps_the_others(server: LiveServer) -> None:
    assert goliat_upload(server).status_code == 200
    assert post_screenshots(server, [("Disk_I/O", jpeg("newer"))]).status_code == 200
    worker_id = only_worker_id(server)
    listed = server.client.get(f"/api/workers/{worker_id}").json()["screenshots"]
    assert len(listed) == len(GOLIAT_TABS)
    assert server.client.get(shot_url(worker_id, "Disk_I/O")).content == jpeg("newer")
    assert server.client.get(shot_url(worker_id, "Timings")).content == jpeg("Timings")


def test_unknown_tabs_are_a_json_404(server: LiveServer) -> None:
    assert goliat_upload(server).status_code == 200
    worker_id = only_worker_id(server)
    for field in ["Progress", "Disk_I", "Disk_I/", "Disk_I/X", "disk_i/o", ""]:
        status, headers, body = raw_get(server, shot_url(worker_id, field))
        assert status == 404, field
        assert headers["content-type"] == "application/json" and "error" in json.loads(body)
    status, _, _ = raw_get(server, shot_url("no-such-worker", "Disk_I/O"))
    assert status == 404


def test_future_tabs_with_any_printable_name_are_kept(server: LiveServer) -> None:
    fields = ["GPU_Memory_(GB)_50%", "Über_Sicht_日本", "a?b#c&d=e", "Progress", "x" * 128]
    answer = post_screenshots(server, [(field, jpeg(field)) for field in fields])
    assert answer.json() == {"success": True, "stored": fields, "dropped": []}
    worker_id = only_worker_id(server)
    for field in fields:
        status, _, content = raw_get(server, shot_url(worker_id, field))
        assert (status, content) == (200, jpeg(field)), field


def test_one_bad_part_never_refuses_the_good_ones(make_server: Any) -> None:
    server: LiveServer = make_server(max_file_bytes=1000)
    answer = post_screenshots(
        server,
        [
            ("Timings", jpeg("t")),
            ("Empty", b""),
            ("Huge", jpeg("h") + b"\x00" * 1000),
            ("Notes", b"<script>alert(1)</script>"),
            ("", jpeg("nameless")),
            ("x" * 129, jpeg("long")),
            ("bell\x07tab", jpeg("bell")),
            ("..", jpeg("dots")),
            ("Disk_I/O", b"\x89PNG\r\n\x1a\nold"),
            ("Disk_I/O", PNG),
        ],
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "success": True,
        "stored": ["Timings", "Disk_I/O"],
        "dropped": [
            {"field": "Empty", "reason": "file is empty"},
            {"field": "Huge", "reason": "file is larger than 1000 bytes"},
            {"field": "Notes", "reason": "not a JPEG or PNG image"},
            {"field": "", "reason": "field name is empty"},
            {"field": "x" * 128, "reason": "field name is longer than 128 characters"},
            {"field": "bell\x07tab", "reason": "field name contains a control character"},
            {"field": "..", "reason": "field name '..' cannot be addressed in a URL"},
            {"field": "Disk_I/O", "reason": "sent again in this request: the later part is kept"},
        ],
    }
    worker_id = only_worker_id(server)
    listed = server.client.get(f"/api/workers/{worker_id}").json()["screenshots"]
    assert sorted(s["tab"] for s in listed) == ["Disk_I/O", "Timings"]
    png = server.client.get(shot_url(worker_id, "Disk_I/O"))
    # The type the bytes prove, not the image/jpeg the part declared.
    assert png.content == PNG and png.headers["content-type"] == "image/png"


def test_a_request_with_no_usable_part_is_refused_and_changes_nothing(server: LiveServer) -> None:
    answer = post_screenshots(server, [("Timings", b""), ("Disk_I/O", b"GIF89a")])
    assert answer.status_code == 400
    body = answer.json()
    # GOLIAT logs the first 100 characters of a refusal: the reason must be there.
    assert answer.text[:100].startswith(
        '{"error":"No usable screenshot (Timings: file is empty; Disk_I/O: not a'
    )
    assert body["success"] is False and body["stored"] == []
    assert [d["field"] for d in body["dropped"]] == ["Timings", "Disk_I/O"]
    assert server.client.get("/api/workers").json() == []


def test_requests_that_are_not_screenshot_uploads_stay_400(server: LiveServer) -> None:
    not_multipart = server.client.post("/api/gui-screenshots", json={"machineId": MACHINE})
    body, content_type = multipart({}, [("Timings", jpeg("t"))])
    no_machine = server.client.post(
        "/api/gui-screenshots", content=body, headers={"content-type": content_type}
    )
    body, content_type = multipart({"machineId": MACHINE}, [])
    no_files = server.client.post(
        "/api/gui-screenshots", content=body, headers={"content-type": content_type}
    )
    assert [r.status_code for r in (not_multipart, no_machine, no_files)] == [400, 400, 400]
    assert "machineId" in no_machine.json()["error"]
    assert server.client.get("/api/workers").json() == []


@pytest.mark.parametrize(
    "field", ["../x", "a/../../b", "C:\\x", "/etc/passwd", "..\\..\\boot.ini", "screenshots/../../x", "./."]
)
def test_path_like_field_names_are_plain_labels_inside_the_store(server: LiveServer, field: str) -> None:
    answer = post_screenshots(server, [(field, jpeg(field))])
    assert answer.json() == {"success": True, "stored": [field], "dropped": []}
    worker_id = only_worker_id(server)
    status, _, content = raw_get(server, shot_url(worker_id, field))
    assert (status, content) == (200, jpeg(field))

    data_dir = server.settings.data_dir
    artifacts = server.settings.artifacts_dir.resolve()
    written = [Path(root) / name for root, _, names in os.walk(data_dir.parent) for name in names]
    images = [path for path in written if path.read_bytes() == jpeg(field)]
    (image,) = images
    assert image.resolve().parent.parent == artifacts / "screenshots"
    assert image.name == tab_key(field)
