"""The simulation map, the results table and comparisons, on SQLite and PostgreSQL, with GOLIAT's
own result shapes (tests/data/goliat-results) uploaded the way GOLIAT uploads them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, cast

from sqlalchemy import delete, func, select

from goliat_monitor.db.tables import result_figures, simulation_runs
from goliat_monitor.domain.splitting import split_config
from tests.api.helpers import gui
from tests.conftest import TEST_CONFIGS, LiveServer

RESULTS = Path(__file__).resolve().parents[1] / "data" / "goliat-results"
FAR = json.loads((TEST_CONFIGS / "far_field_small.json").read_text(encoding="utf-8"))
NEAR = json.loads((TEST_CONFIGS / "near_field_config.json").read_text(encoding="utf-8"))
MACHINE = "10.0.0.1"


def create(
    server: LiveServer, name: str, config: dict[str, Any], strategy: str = "phantom"
) -> dict[str, Any]:
    split = split_config(config, strategy)
    body = {
        "name": name,
        "baseConfig": config,
        "assignments": [{"splitConfig": c} for c in split.configs],
    }
    response = server.client.post("/api/super-studies", json=body)
    assert response.status_code == 200, response.text
    return cast(dict[str, Any], response.json())


def sims(server: LiveServer, study_id: str) -> list[dict[str, Any]]:
    response = server.client.get(f"/api/super-studies/{study_id}/simulations")
    assert response.status_code == 200, response.text
    return cast(list[dict[str, Any]], response.json())


def statuses(server: LiveServer, study_id: str) -> list[str]:
    return [s["status"] for s in sims(server, study_id)]


def upload(server: LiveServer, assignment_id: str, path: str, files: dict[str, bytes]) -> None:
    response = server.client.post(
        f"/api/assignments/{assignment_id}/results",
        data={"relativePath": path},
        files=[("files", (name, data, "application/json")) for name, data in files.items()],
    )
    assert response.status_code == 200, response.text


def table(server: LiveServer, study_id: str) -> dict[str, Any]:
    response = server.client.get(f"/api/super-studies/{study_id}/results/table")
    assert response.status_code == 200, response.text
    return cast(dict[str, Any], response.json())


def counter(n: int, total: int, case: str) -> dict[str, Any]:
    return {
        "type": "simulation_details",
        "simulation_count": n,
        "total_simulations": total,
        "current_case": case,
    }


def claim(server: LiveServer, machine: str = MACHINE) -> dict[str, Any]:
    response = server.client.get("/api/assignment", params={"machineId": machine})
    assert response.status_code == 200, response.text
    return cast(dict[str, Any], response.json())


def test_far_field_map_follows_simulation_counter_uploads_and_failure(server: LiveServer) -> None:
    study = create(server, "far", FAR)
    listed = sims(server, study["id"])
    assert len(listed) == 24 and set(statuses(server, study["id"])) == {"PENDING"}
    first = listed[0]
    assert set(first) >= {
        "key",
        "phantom",
        "frequencyMhz",
        "direction",
        "polarization",
        "scenario",
        "orientation",
        "assignmentId",
        "assignmentIndex",
        "status",
        "startedAt",
        "finishedAt",
        "durationS",
        "resultPath",
    }
    assert first["key"] == "far_field/thelonious/700MHz/environmental_x_pos_theta"
    assert (first["direction"], first["polarization"], first["scenario"], first["orientation"]) == (
        "x_pos",
        "theta",
        None,
        None,
    )
    assert first["assignmentIndex"] == 0 and first["resultPath"] == first["key"]

    assignment = claim(server)
    assert assignment["index"] == 0
    gui(server.client, counter(1, 8, "thelonious, 700MHz, x_pos, theta"), machine=MACHINE)
    assert statuses(server, study["id"])[:3] == ["RUNNING", "PENDING", "PENDING"]
    server.clock.advance(30)
    gui(server.client, counter(2, 8, "thelonious, 700MHz, x_pos, phi"), machine=MACHINE)
    now = sims(server, study["id"])
    assert [s["status"] for s in now[:3]] == ["DONE", "RUNNING", "PENDING"]
    assert now[0]["durationS"] == 30.0 and now[0]["finishedAt"] is not None

    # results for simulation 3 arrive (GOLIAT uploads one folder per simulation): DONE
    upload(
        server,
        assignment["id"],
        listed[2]["resultPath"],
        {"sar_results.json": (RESULTS / "far_field_sar_results.json").read_bytes()},
    )
    assert statuses(server, study["id"])[2] == "DONE"

    # the run fails while simulation 2 runs: it is FAILED, the others keep their state
    gui(
        server.client,
        {"type": "finished", "message": "Study finished with errors", "exit_code": 1},
        machine=MACHINE,
    )
    after = statuses(server, study["id"])
    assert after[:4] == ["DONE", "FAILED", "DONE", "PENDING"]

    # a person retries the assignment and a later attempt runs it again
    assert server.client.post(f"/api/assignments/{assignment['id']}/retry").status_code == 200
    retry = claim(server, "10.0.0.2")
    assert retry["id"] == assignment["id"]
    gui(server.client, counter(2, 8, "thelonious, 700MHz, x_pos, phi"), machine="10.0.0.2")
    assert statuses(server, study["id"])[1] == "RUNNING"
    gui(server.client, {"type": "finished", "message": "Study finished successfully"}, machine="10.0.0.2")
    assert statuses(server, study["id"])[:8] == ["DONE"] * 8
    assert statuses(server, study["id"])[8:] == ["PENDING"] * 16


def test_table_json_csv_and_unreadable_files(server: LiveServer) -> None:
    study = create(server, "far", FAR)
    listed = sims(server, study["id"])
    aid = listed[0]["assignmentId"]
    sar = (RESULTS / "far_field_sar_results.json").read_bytes()
    upload(server, aid, listed[0]["resultPath"], {"sar_results.json": sar, "verbose.log": b"x\n"})
    patched = json.loads(sar)
    patched["whole_body_sar"] = 2e-05
    upload(server, aid, listed[1]["resultPath"], {"sar_results.json": json.dumps(patched).encode()})
    upload(server, aid, listed[2]["resultPath"], {"sar_results.json": b"{ truncated"})
    upload(server, aid, listed[3]["resultPath"], {"sar_results.json": b"[]"})

    got = table(server, study["id"])
    names = [c["name"] for c in got["columns"]]
    assert names[:9] == [
        "key",
        "phantom",
        "frequencyMhz",
        "direction",
        "polarization",
        "scenario",
        "position",
        "orientation",
        "assignmentIndex",
    ]
    assert names[9:11] == ["whole_body_sar", "peak_sar_10g_W_kg"]
    columns = {c["name"]: c for c in got["columns"]}
    assert (
        columns["whole_body_sar"]["unit"] == "W/kg" and columns["whole_body_sar"]["label"] == "Whole-body SAR"
    )
    assert columns["skin_group_weighted_avg_sar"]["unit"] == "W/kg"
    assert columns["power_balance.Balance"]["unit"] == "%"
    assert [r["key"] for r in got["rows"]] == [listed[0]["key"], listed[1]["key"]]
    row = got["rows"][0]
    assert row["whole_body_sar"] == 9.8812345e-06 and row["peak_sar_10g_W_kg"] == 0.000142088119
    assert row["phantom"] == "thelonious" and row["frequencyMhz"] == 700 and row["direction"] == "x_pos"
    assert got["rows"][1]["whole_body_sar"] == 2e-05
    unreadable = {u["path"]: u["error"] for u in got["unreadable"]}
    assert set(unreadable) == {
        f"{listed[2]['resultPath']}/sar_results.json",
        f"{listed[3]['resultPath']}/sar_results.json",
    }
    assert "not valid JSON" in unreadable[f"{listed[2]['resultPath']}/sar_results.json"]

    response = server.client.get(f"/api/super-studies/{study['id']}/results/table", params={"format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["key"] for r in rows] == [listed[0]["key"], listed[1]["key"]]
    assert float(rows[0]["whole_body_sar"]) == 9.8812345e-06 and rows[0]["scenario"] == ""
    assert list(rows[0]) == names


def test_near_field_sar_and_sapd_make_one_row(server: LiveServer) -> None:
    study = create(server, "near", NEAR, strategy="auto")
    listed = sims(server, study["id"])
    sim = listed[0]
    assert sim["direction"] is None and sim["scenario"] and sim["position"] and sim["orientation"]
    upload(
        server,
        sim["assignmentId"],
        sim["resultPath"],
        {
            "sar_results.json": (RESULTS / "near_field_sar_results.json").read_bytes(),
            "sapd_results.json": (RESULTS / "near_field_sapd_results.json").read_bytes(),
        },
    )
    got = table(server, study["id"])
    assert len(got["rows"]) == 1
    row = got["rows"][0]
    assert row["head_SAR"] == 0.0911403 and row["peak_sapd_W_m2"] == 3.41207
    assert row["power_balance.Balance"] is None and "whole_body_sar" not in row
    assert statuses(server, study["id"])[0] == "DONE"


def test_detail_has_files_timings_and_a_log_link(server: LiveServer) -> None:
    study = create(server, "far", FAR)
    claim(server)
    gui(server.client, counter(1, 8, "thelonious, 700MHz, x_pos, theta"), machine=MACHINE)
    gui(
        server.client,
        {"type": "timing", "phase": "setup", "subtask": None, "seconds": 12.5, "simulation": 1},
        machine=MACHINE,
    )
    sim = sims(server, study["id"])[0]
    upload(server, sim["assignmentId"], sim["resultPath"], {"sar_results.json": b'{"whole_body_sar": 1.0}'})
    response = server.client.get(
        f"/api/super-studies/{study['id']}/simulations/detail", params={"key": sim["key"]}
    )
    assert response.status_code == 200, response.text
    detail = response.json()
    assert [f["path"] for f in detail["files"]] == [f"{sim['resultPath']}/sar_results.json"]
    assert [(t["phase"], t["seconds"]) for t in detail["timings"]] == [("setup", 12.5)]
    assert detail["log"]["workerId"] == sim["workerId"] and "." in detail["log"]["before"]
    page = server.client.get(
        f"/workers/{detail['log']['workerId']}", params={"before": detail["log"]["before"]}
    )
    assert page.status_code == 200
    missing = server.client.get(
        f"/api/super-studies/{study['id']}/simulations/detail", params={"key": "nope"}
    )
    assert missing.status_code == 404


def test_compare_two_studies_of_the_same_shape(server: LiveServer) -> None:
    before = create(server, "before", FAR)
    after = create(server, "after", {**FAR, "run_tag": "fine"})
    a_sims, b_sims = sims(server, before["id"]), sims(server, after["id"])
    assert [s["key"] for s in a_sims] == [s["key"] for s in b_sims]
    assert b_sims[0]["resultPath"] == b_sims[0]["key"] + "__fine"
    upload(
        server,
        a_sims[0]["assignmentId"],
        a_sims[0]["resultPath"],
        {"sar_results.json": b'{"whole_body_sar": 2.0, "peak_sar_10g_W_kg": 4.0}'},
    )
    upload(
        server,
        b_sims[0]["assignmentId"],
        b_sims[0]["resultPath"],
        {"sar_results.json": b'{"whole_body_sar": 2.5, "peak_sar_10g_W_kg": 3.0}'},
    )
    response = server.client.get(
        f"/api/super-studies/{before['id']}/results/compare", params={"with": after["id"]}
    )
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["sharedSimulations"] == 24 and got["onlyInStudy"] == [] and got["onlyInOther"] == []
    row = got["rows"][0]
    assert row["key"] == a_sims[0]["key"]
    assert row["figures"]["whole_body_sar"] == {"this": 2.0, "other": 2.5, "relDiff": 0.25}
    assert row["figures"]["peak_sar_10g_W_kg"]["relDiff"] == -0.25

    smaller = create(server, "smaller", {**FAR, "phantoms": ["thelonious"]})
    refused = server.client.get(
        f"/api/super-studies/{before['id']}/results/compare", params={"with": smaller["id"]}
    )
    assert refused.status_code == 409 and "only in this one" in refused.json()["error"]
    shared = server.client.get(
        f"/api/super-studies/{before['id']}/results/compare",
        params={"with": smaller["id"], "intersect": "true"},
    )
    assert shared.status_code == 200 and shared.json()["sharedSimulations"] == 8
    assert len(shared.json()["onlyInStudy"]) == 16
    near = create(server, "near", NEAR, strategy="auto")
    unrelated = server.client.get(
        f"/api/super-studies/{before['id']}/results/compare", params={"with": near["id"]}
    )
    assert unrelated.status_code == 409
    assert (
        server.client.get(
            f"/api/super-studies/{before['id']}/results/compare", params={"with": before["id"]}
        ).status_code
        == 400
    )
    assert (
        server.client.get(
            f"/api/super-studies/{before['id']}/results/compare", params={"with": "nope"}
        ).status_code
        == 404
    )


def test_deleting_a_study_deletes_its_marks_and_figures(server: LiveServer) -> None:
    study = create(server, "far", FAR)
    claim(server)
    gui(server.client, counter(1, 8, "thelonious, 700MHz, x_pos, theta"), machine=MACHINE)
    sim = sims(server, study["id"])[0]
    upload(server, sim["assignmentId"], sim["resultPath"], {"sar_results.json": b'{"whole_body_sar": 1.0}'})
    assignment_ids = {s["assignmentId"] for s in sims(server, study["id"])}

    def stored() -> tuple[int, int]:
        def count(conn: Any, table: Any) -> int:
            query = select(func.count()).select_from(table).where(table.c.assignment_id.in_(assignment_ids))
            return int(conn.execute(query).scalar_one())

        return server.context.db.read_sync(
            lambda conn: (count(conn, simulation_runs), count(conn, result_figures))
        )

    assert stored() == (1, 1)
    assert server.client.delete(f"/api/super-studies/{study['id']}").status_code == 200
    assert server.client.get(f"/api/super-studies/{study['id']}/simulations").status_code == 404
    assert stored() == (0, 0)


def test_results_uploaded_before_the_server_parsed_them_are_parsed_once(server: LiveServer) -> None:
    """A server upgraded to migration 0010 holds result files without figures: the first look parses them."""
    study = create(server, "far", FAR)
    sim = sims(server, study["id"])[0]
    upload(server, sim["assignmentId"], sim["resultPath"], {"sar_results.json": b'{"whole_body_sar": 4.0}'})
    server.context.db.write_sync(lambda conn: conn.execute(delete(result_figures)))
    got = table(server, study["id"])
    assert [r["whole_body_sar"] for r in got["rows"]] == [4.0]
    count = server.context.db.read_sync(
        lambda conn: conn.execute(select(func.count()).select_from(result_figures)).scalar_one()
    )
    assert count == 1


def test_the_table_reads_no_result_file_when_asked(server: LiveServer) -> None:
    """Figures are parsed once, on upload: with the stored files gone, the table still has them."""
    study = create(server, "far", FAR)
    sim = sims(server, study["id"])[0]
    upload(server, sim["assignmentId"], sim["resultPath"], {"sar_results.json": b'{"whole_body_sar": 3.0}'})
    stored = [p for p in server.settings.artifacts_dir.rglob("*") if p.is_file()]
    assert stored, "the upload should be in the local artifact store"
    for path in stored:
        path.unlink()
    assert [r["whole_body_sar"] for r in table(server, study["id"])["rows"]] == [3.0]


def test_a_folder_spelled_in_another_case_counts_for_the_map_and_the_table_alike(server: LiveServer) -> None:
    study = create(server, "far", FAR)
    sim = sims(server, study["id"])[0]
    phantom = sim["resultPath"].split("/")[1]
    shouted = sim["resultPath"].replace(phantom, phantom.title())
    assert shouted != sim["resultPath"]
    upload(server, sim["assignmentId"], shouted, {"sar_results.json": b'{"whole_body_sar": 5.0}'})
    assert sims(server, study["id"])[0]["status"] == "DONE"
    assert [r["whole_body_sar"] for r in table(server, study["id"])["rows"]] == [5.0]
