"""docs/grafana-dashboard.json: a Grafana dashboard whose every query names a metric /metrics has."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.api.helpers import create_study, gui, heartbeat, log_batch
from tests.conftest import LiveServer

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
METRIC = re.compile(r"\b((?:goliat_monitor|process)_[a-z_]+)\b")


def _targets(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [target for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_dashboard_is_a_grafana_dashboard_with_a_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 30
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


def test_every_metric_the_dashboard_queries_is_served_and_every_metric_has_a_panel(
    make_server: Callable[..., LiveServer],
) -> None:
    server = make_server()
    study = create_study(server.client, count=2)
    machine = "10.0.0.5"
    assert heartbeat(server.client, machine).status_code == 200
    claim = server.client.post(
        f"/api/assignments/{study['assignments'][0]['id']}/claim", json={"machineId": machine}
    )
    assert claim.status_code == 200
    assert (
        gui(server.client, log_batch(1, [("Simulation 1/2", "progress")]), machine=machine).status_code == 200
    )
    response = server.client.get("/metrics")
    assert response.status_code == 200
    families = list(text_string_to_metric_families(response.text))
    served = {sample.name for family in families for sample in family.samples}

    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queried = {name for target in _targets(dashboard) for name in METRIC.findall(target["expr"])}
    assert queried, "the dashboard queries nothing"
    assert queried <= served, f"queried but not served: {sorted(queried - served)}"
    ours = {family.name for family in families if family.name.startswith("goliat_monitor_")}
    shown = {name for name in ours if any(q == name or q.startswith(name + "_") for q in queried)}
    assert shown == ours, f"served without a panel: {sorted(ours - shown)}"
