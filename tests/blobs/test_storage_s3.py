"""With the artifacts in a bucket, the dashboard's artifact size is what the database records."""

from __future__ import annotations

from collections.abc import Callable

from tests.api.helpers import create_study
from tests.conftest import LiveServer


def test_a_bucket_reports_the_recorded_upload_sizes(
    make_server: Callable[..., LiveServer], bucket: str, s3_env: str
) -> None:
    server = make_server(artifacts_url=f"s3://{bucket}/campaign")
    assignment = create_study(server.client, count=1)["assignments"][0]["id"]
    for name, size in (("a.bin", 1234), ("b.bin", 4321)):
        answer = server.client.post(
            f"/api/assignments/{assignment}/results",
            data={"relativePath": "far_field/x"},
            files=[("files", (name, b"\1" * size, "application/octet-stream"))],
        )
        assert answer.status_code == 200, answer.text
    artifacts = server.client.get("/api/storage").json()["artifacts"]
    assert artifacts["kind"] == "object store" and artifacts["bytes"] == 1234 + 4321
    assert artifacts["location"] == f"s3://{bucket}/campaign" and "not listed" in artifacts["note"]
