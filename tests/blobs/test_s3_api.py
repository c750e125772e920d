"""The server with `--artifacts-url s3://...`: every artifact and screenshot lives in the bucket.

Real HTTP against a real server on SQLite and PostgreSQL, and a real S3-compatible server (moto's);
the bucket is inspected through the S3 API, never through the server.
"""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.api.helpers import create_study
from tests.blobs.conftest import object_keys
from tests.blobs.helpers import RUN, check_campaign_reads_back, upload_campaign
from tests.conftest import LiveServer


@pytest.fixture
def s3_server(make_server: Callable[..., LiveServer], bucket: str, s3_env: str) -> LiveServer:
    return make_server(artifacts_url=f"s3://{bucket}/campaign")


def test_artifacts_and_screenshots_go_to_the_bucket_and_come_back(
    s3_server: LiveServer, s3_client: Any, bucket: str
) -> None:
    campaign = upload_campaign(s3_server)
    keys = object_keys(s3_client, bucket)
    results = {f"campaign/results/{campaign.assignment_id}/{path}" for path in campaign.files}
    assert results <= keys
    assert len([key for key in keys if key.startswith("campaign/screenshots/")]) == 2
    assert len(keys) == len(results) + 2
    big = s3_client.head_object(
        Bucket=bucket, Key=f"campaign/results/{campaign.assignment_id}/{RUN}/output.h5"
    )
    assert big["ETag"].strip('"').endswith("-2"), "the large file went up as a multipart upload"
    assert not list((s3_server.settings.artifacts_dir).rglob("*.json")), "nothing lands in the local folder"
    check_campaign_reads_back(s3_server, campaign)


def test_deleting_a_study_deletes_its_objects(s3_server: LiveServer, s3_client: Any, bucket: str) -> None:
    campaign = upload_campaign(s3_server)
    other = create_study(s3_server.client, name="other", count=1)["assignments"][0]["id"]
    kept = s3_server.client.post(
        f"/api/assignments/{other}/results", data={"relativePath": ""}, files=[("files", ("k.json", b"{}"))]
    )
    assert kept.status_code == 200
    assert s3_server.client.delete(f"/api/super-studies/{campaign.study_id}").status_code == 200
    assert object_keys(s3_client, bucket, "campaign/results/") == {f"campaign/results/{other}/k.json"}
    assert len(object_keys(s3_client, bucket, "campaign/screenshots/")) == 2  # a worker's, not the study's


def test_an_object_gone_from_the_bucket_is_404_not_500(
    s3_server: LiveServer, s3_client: Any, bucket: str
) -> None:
    campaign = upload_campaign(s3_server)
    s3_client.delete_object(Bucket=bucket, Key=f"campaign/results/{campaign.assignment_id}/logs/verbose.log")
    got = s3_server.client.get(
        f"/api/assignments/{campaign.assignment_id}/results/file", params={"path": "logs/verbose.log"}
    )
    assert got.status_code == 404
    shots = object_keys(s3_client, bucket, "campaign/screenshots/")
    s3_client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in shots]})
    assert s3_server.client.get(f"/api/workers/{campaign.worker_id}/screenshots/Timings").status_code == 404


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_50_mb_file_streams_through_without_being_held_in_memory(
    s3_server: LiveServer, tmp_path: Path
) -> None:
    """Python's allocations during the upload, the download and the zip stay a fraction of the file's size."""
    size = 50 * 1024 * 1024
    source = tmp_path / "fields.h5"
    digest = hashlib.sha256()
    with source.open("wb") as out:
        for _ in range(size // (1024 * 1024)):
            chunk = os.urandom(1024 * 1024)
            digest.update(chunk)
            out.write(chunk)
    assignment_id = create_study(s3_server.client, count=1)["assignments"][0]["id"]

    tracemalloc.start()
    try:
        with source.open("rb") as handle:
            response = s3_server.client.post(
                f"/api/assignments/{assignment_id}/results",
                data={"relativePath": "big"},
                files=[("files", ("fields.h5", handle, "application/octet-stream"))],
            )
        assert response.status_code == 200, response.text
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        received = hashlib.sha256()
        url = f"/api/assignments/{assignment_id}/results/file"
        with s3_server.client.stream("GET", url, params={"path": "big/fields.h5"}) as download:
            assert download.status_code == 200
            for chunk in download.iter_bytes():
                received.update(chunk)
        _, download_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with s3_server.client.stream("GET", f"/api/assignments/{assignment_id}/results/download") as archive:
            assert archive.status_code == 200
            zipped = sum(len(chunk) for chunk in archive.iter_bytes())
        _, zip_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received.hexdigest() == digest.hexdigest()
    listing = s3_server.client.get(f"/api/assignments/{assignment_id}/results/list").json()
    assert [(f["size"], f["sha256"]) for f in listing["files"]] == [(size, digest.hexdigest())]
    # One upload part (8 MiB) at a time going up, one 1 MiB chunk at a time coming down.
    assert upload_peak < size / 3, f"upload peak {upload_peak / 2**20:.1f} MiB"
    assert download_peak < size / 5, f"download peak {download_peak / 2**20:.1f} MiB"
    assert zipped > size and zip_peak < size / 5, f"zip peak {zip_peak / 2**20:.1f} MiB"
