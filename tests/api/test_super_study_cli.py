"""`goliat-monitor super-study create` splits locally and uploads through GOLIAT's own call."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from click.testing import CliRunner, Result

from goliat_monitor.cli import main
from goliat_monitor.domain.splitting import split_config
from tests.conftest import TEST_CONFIGS, LiveServer


def create(server: LiveServer, *args: str) -> Result:
    config = str(TEST_CONFIGS / "far_field_config.json")
    return CliRunner().invoke(main, ["super-study", "create", config, "--server", server.url, *args])


def test_cli_creates_the_same_study_goliat_would(server: LiveServer) -> None:
    result = create(server, "--name", "ff", "--split-by", "auto", "--num-splits", "8")
    assert result.exit_code == 0, result.output
    study = server.client.get("/api/super-studies", params={"name": "ff"}).json()[0]
    detail = server.client.get(f"/api/super-studies/{study['id']}").json()
    config = json.loads((TEST_CONFIGS / "far_field_config.json").read_text())
    expected = split_config(config, "auto", num_splits=8).configs
    assert [a["splitConfig"] for a in detail["assignments"]] == expected
    assert sum(a["size"] for a in detail["assignments"]) == 432
    assert "base_config.json" in detail["parentConfigs"]


def test_cli_refuses_a_live_name_unless_replace(server: LiveServer) -> None:
    assert create(server, "--name", "dup").exit_code == 0
    clash = create(server, "--name", "dup")
    assert clash.exit_code == 1 and "409" in clash.output
    assert create(server, "--name", "dup", "--replace").exit_code == 0


def test_cli_refusal_of_the_split_exits_2(server: LiveServer) -> None:
    result = create(server, "--name", "x", "--split-by", "scenario")
    assert result.exit_code == 2


def test_concurrent_creation_of_one_name_has_one_winner(server: LiveServer) -> None:
    body = {"name": "race", "assignments": [{"splitConfig": {}, "status": "PENDING"}]}

    def post(_: int) -> int:
        import httpx

        return httpx.post(f"{server.url}/api/super-studies", json=body, timeout=60).status_code

    with ThreadPoolExecutor(20) as pool:
        statuses = sorted(pool.map(post, range(20)))
    assert statuses == [200] + [409] * 19
    assert len(server.client.get("/api/super-studies", params={"name": "race"}).json()) == 1
