"""`goliat-monitor artifacts migrate --to s3://...`: copy a local artifact folder into a bucket.

The campaign is uploaded through a real server on SQLite and PostgreSQL into its local folder, the
command runs against a real S3-compatible server, and a server pointed at the bucket afterwards
serves everything the old one did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from goliat_monitor.cli import main
from goliat_monitor.settings import ServerSettings
from tests.blobs.conftest import object_keys
from tests.blobs.helpers import RUN, Campaign, check_campaign_reads_back, upload_campaign
from tests.conftest import FakeClock, LiveServer, start_server


def run_migrate(server: LiveServer, target: str) -> Result:
    args = ["artifacts", "migrate", "--to", target, "--data-dir", str(server.settings.data_dir)]
    if server.settings.database_url:
        args += ["--database-url", server.settings.database_url]
    return CliRunner().invoke(main, args)


@pytest.fixture
def local_campaign(server: LiveServer, s3_env: str) -> Campaign:
    return upload_campaign(server)


def test_migrate_copies_verifies_and_says_what_to_set(
    server: LiveServer, local_campaign: Campaign, s3_client: Any, bucket: str
) -> None:
    target = f"s3://{bucket}/moved"
    first = run_migrate(server, target)
    assert first.exit_code == 0, first.output
    assert "verified all 5 objects" in first.stdout and "5 copied" in first.stdout
    assert f"GOLIAT_MONITOR_ARTIFACTS_URL={target}" in first.stdout
    local = {
        f"moved/{path.relative_to(server.settings.artifacts_dir).as_posix()}"
        for path in server.settings.artifacts_dir.rglob("*")
        if path.is_file()
    }
    assert object_keys(s3_client, bucket) == local and len(local) == 5

    again = run_migrate(server, target)
    assert again.exit_code == 0, again.output
    assert "0 copied, 5 already there" in again.stdout

    damaged = f"moved/results/{local_campaign.assignment_id}/{RUN}/sar_results.json"
    original = local_campaign.files[f"{RUN}/sar_results.json"]
    s3_client.put_object(Bucket=bucket, Key=damaged, Body=b"X" * len(original))
    repaired = run_migrate(server, target)
    assert repaired.exit_code == 0, repaired.output
    assert "1 copied, 4 already there" in repaired.stdout
    assert s3_client.get_object(Bucket=bucket, Key=damaged)["Body"].read() == original

    settings = ServerSettings(
        data_dir=server.settings.data_dir, database_url=server.settings.database_url, artifacts_url=target
    )
    url, app, stop = start_server(settings, FakeClock())
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            moved = LiveServer(url, app.state.context, FakeClock(), client, app.state.loop)
            for path in server.settings.artifacts_dir.rglob("*"):
                if path.is_file():
                    path.unlink()  # the new server must read the bucket, not the folder
            check_campaign_reads_back(moved, local_campaign)
    finally:
        stop()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: bytes([data[0] ^ 1]) + data[1:], id="same-size-other-bytes"),
        pytest.param(lambda data: data[:-1], id="truncated"),
        pytest.param(None, id="missing"),
    ],
)
def test_a_damaged_or_missing_file_fails_the_migration_and_nothing_is_switched(
    server: LiveServer,
    local_campaign: Campaign,
    bucket: str,
    damage: Callable[[bytes], bytes] | None,
) -> None:
    key = f"results/{local_campaign.assignment_id}/{RUN}/sar_results.json"
    path = server.settings.artifacts_dir / key
    if damage is None:
        path.unlink()
    else:
        path.write_bytes(damage(path.read_bytes()))
    result = run_migrate(server, f"s3://{bucket}/moved")
    assert result.exit_code == 1
    assert f"FAILED {key}" in result.stderr and "1 of 5 objects failed" in result.stderr
    assert "GOLIAT_MONITOR_ARTIFACTS_URL" not in result.stdout


def test_a_target_that_is_not_an_object_store_is_refused(server: LiveServer, tmp_path: Any) -> None:
    result = run_migrate(server, f"file://{tmp_path}")
    assert result.exit_code == 2 and "s3://BUCKET/PREFIX" in result.output


def test_a_bucket_that_does_not_exist_is_reported_before_anything_is_copied(
    server: LiveServer, local_campaign: Campaign
) -> None:
    result = run_migrate(server, "s3://no-such-bucket/moved")
    assert result.exit_code == 1 and "'no-such-bucket' does not exist" in result.stderr
