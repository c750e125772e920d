"""Result uploads: stored once, indexed, replaceable, never outside their folder; browsed and zipped."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable
from typing import cast

import httpx
import pytest
from sqlalchemy import func, select

from goliat_monitor.db.tables import result_files
from tests.api.helpers import create_study
from tests.conftest import LiveServer

PATH = "far_field/thelonious/700MHz/environmental_x_pos_theta"


def upload(
    server: LiveServer, assignment_id: str, relative_path: str, files: dict[str, bytes]
) -> httpx.Response:
    return server.client.post(
        f"/api/assignments/{assignment_id}/results",
        data={"relativePath": relative_path},
        files=[("files", (name, content, "application/octet-stream")) for name, content in files.items()],
    )


def stored_rows(server: LiveServer) -> int:
    return server.context.db.read_sync(
        lambda conn: conn.execute(select(func.count()).select_from(result_files)).scalar_one()
    )


@pytest.fixture
def assignment_id(server: LiveServer) -> str:
    return cast(str, create_study(server.client, count=2)["assignments"][0]["id"])


def test_upload_list_download_and_replace(server: LiveServer, assignment_id: str) -> None:
    sar = b'{"peak_sar_10g_W_kg": 0.012}'
    response = upload(server, assignment_id, PATH, {"sar_results.json": sar, "verbose.log": b"log\n"})
    assert response.status_code == 200 and response.json() == {"success": True}
    study_id = server.client.get(f"/api/assignments/{assignment_id}").json()["superStudyId"]
    listing = server.client.get(f"/api/super-studies/{study_id}/results/list").json()
    assert listing["totalFiles"] == 2 and listing["totalSize"] == len(sar) + 4
    top = listing["tree"][0]
    assert (top["name"], top["type"], top["path"]) == ("far_field", "directory", "far_field")
    leaf_dir = top["children"][0]["children"][0]["children"][0]
    assert [c["path"] for c in leaf_dir["children"]] == [f"{PATH}/sar_results.json", f"{PATH}/verbose.log"]
    sha = {f["path"]: f["sha256"] for f in listing["files"]}
    assert sha[f"{PATH}/sar_results.json"] == hashlib.sha256(sar).hexdigest()

    got = server.client.get(
        f"/api/super-studies/{study_id}/results/file", params={"path": f"{PATH}/sar_results.json"}
    )
    assert got.status_code == 200 and got.content == sar
    assert got.headers["content-type"].startswith("application/json")

    assert upload(server, assignment_id, PATH, {"sar_results.json": b"{}"}).status_code == 200
    assert stored_rows(server) == 2
    again = server.client.get(
        f"/api/assignments/{assignment_id}/results/file", params={"path": f"{PATH}/sar_results.json"}
    )
    assert again.content == b"{}"


def test_zip_downloads_hold_every_file(server: LiveServer, assignment_id: str) -> None:
    upload(server, assignment_id, PATH, {"a.json": b"1" * 5000, "b.pkl": bytes(range(256))})
    upload(server, assignment_id, "far_field/eartha/700MHz/x", {"c.json": b"3"})
    study_id = server.client.get(f"/api/assignments/{assignment_id}").json()["superStudyId"]
    for url in (
        f"/api/super-studies/{study_id}/results/download",
        f"/api/assignments/{assignment_id}/results/download",
    ):
        response = server.client.get(url)
        assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
        archive = zipfile.ZipFile(io.BytesIO(response.content))
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == sorted(
            [f"{PATH}/a.json", f"{PATH}/b.pkl", "far_field/eartha/700MHz/x/c.json"]
        )
        assert archive.read(f"{PATH}/b.pkl") == bytes(range(256))


@pytest.mark.parametrize(
    "relative_path",
    ["/etc", "../outside", "a/../../b", "C:/Windows", "c:evil", "a\\..\\b", "a\x00b", "ok/..", "a/b:c"],
)
def test_escaping_relative_paths_are_refused(
    server: LiveServer, assignment_id: str, relative_path: str
) -> None:
    response = upload(server, assignment_id, relative_path, {"x.json": b"{}"})
    assert response.status_code == 400, response.text
    assert "error" in response.json()
    assert stored_rows(server) == 0
    assert not list((server.settings.artifacts_dir).rglob("x.json"))


@pytest.mark.parametrize("filename", ["../x.json", "..", "a/b.json", "sub\\x.json", "a:b.json"])
def test_escaping_file_names_are_refused(server: LiveServer, assignment_id: str, filename: str) -> None:
    response = upload(server, assignment_id, PATH, {filename: b"{}"})
    assert response.status_code == 400, response.text
    assert stored_rows(server) == 0


def test_windows_absolute_file_name_is_reduced_to_its_base_name(
    server: LiveServer, assignment_id: str
) -> None:
    # The multipart parser keeps only what follows the last backslash of "C:\\...": it cannot escape.
    assert upload(server, assignment_id, PATH, {"C:\\Windows\\x.json": b"{}"}).status_code == 200
    stored = [
        p.relative_to(server.settings.artifacts_dir).as_posix()
        for p in server.settings.artifacts_dir.rglob("x.json")
    ]
    assert stored == [f"results/{assignment_id}/{PATH}/x.json"]


def test_file_over_the_limit_is_413_and_nothing_is_stored(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(max_file_bytes=1000)
    assignment_id = create_study(server.client)["assignments"][0]["id"]
    response = upload(server, assignment_id, PATH, {"small.json": b"{}", "big.bin": b"x" * 1001})
    assert response.status_code == 413
    assert stored_rows(server) == 0


def test_request_over_the_limit_is_413(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(max_request_bytes=10_000)
    assignment_id = create_study(server.client)["assignments"][0]["id"]
    response = upload(server, assignment_id, PATH, {"big.bin": b"x" * 20_000})
    assert response.status_code == 413
    assert stored_rows(server) == 0


def test_upload_to_unknown_assignment_is_404(server: LiveServer) -> None:
    assert upload(server, "missing", PATH, {"a.json": b"{}"}).status_code == 404


def test_missing_files_is_400(server: LiveServer, assignment_id: str) -> None:
    response = server.client.post(f"/api/assignments/{assignment_id}/results", data={"relativePath": PATH})
    assert response.status_code == 400


def test_missing_file_in_listing_is_404(server: LiveServer, assignment_id: str) -> None:
    study_id = server.client.get(f"/api/assignments/{assignment_id}").json()["superStudyId"]
    response = server.client.get(
        f"/api/super-studies/{study_id}/results/file", params={"path": "../../etc/passwd"}
    )
    assert response.status_code == 404


def test_uploaded_html_is_a_download_in_a_sandbox(server: LiveServer, assignment_id: str) -> None:
    upload(server, assignment_id, PATH, {"report.html": b"<script>alert(1)</script>"})
    got = server.client.get(
        f"/api/assignments/{assignment_id}/results/file", params={"path": f"{PATH}/report.html"}
    )
    assert got.headers["content-disposition"].startswith("attachment")
    assert got.headers["content-security-policy"] == "sandbox"


def test_replacing_a_study_deletes_the_old_ones_result_files(server: LiveServer) -> None:
    old = create_study(server.client, name="same")
    old_assignment = old["assignments"][0]["id"]
    assert upload(server, old_assignment, PATH, {"sar_results.json": b"{}"}).status_code == 200
    assert (server.settings.artifacts_dir / "results" / old_assignment).is_dir()
    new = create_study(server.client, name="same", replace=True)
    assert not (server.settings.artifacts_dir / "results" / old_assignment).exists()
    assert stored_rows(server) == 0
    assert server.client.get(f"/api/super-studies/{old['id']}").status_code == 404
    assert server.client.get(f"/api/super-studies/{new['id']}").status_code == 200
