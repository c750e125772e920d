"""The Notifications admin API: targets with their events, masked URLs, "send a test", the
history; admins only (roles, CSRF, audit), on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

import httpx

from goliat_monitor.server import notify
from tests.accounts import ADMIN, ADMIN_PASSWORD, bearer, private_server, sign_in
from tests.api.helpers import create_study, gui
from tests.conftest import LiveServer
from tests.notify_support import Receiver, receiver
from tests.support import wait_for

__all__ = ["receiver"]

SECRET = "s3cr3t-webhook-password"


def add(client: httpx.Client, url: str, events: list[str] | None = None, **headers: str) -> httpx.Response:
    return client.post(
        "/api/notifications/targets",
        json={"name": "ops", "url": url, "events": events or []},
        headers=headers,
    )


def test_an_admin_adds_a_target_sees_it_masked_tests_it_and_removes_it(
    make_server: Callable[..., LiveServer], receiver: Receiver
) -> None:
    server = private_server(make_server)
    admin, csrf = sign_in(server, ADMIN, ADMIN_PASSWORD)
    url = f"json://ops:{SECRET}@127.0.0.1:{receiver.port}/hook"
    assert add(admin, url).status_code == 403  # a cookie change without the CSRF token
    created = add(admin, url, ["study_failed", "worker_offline"], **{"X-CSRF-Token": csrf})
    assert created.status_code == 201, created.text
    target = created.json()
    assert target["url"] == f"json://ops:****@127.0.0.1:{receiver.port}/hook"
    assert target["events"] == ["study_failed", "worker_offline"] and target["createdBy"] == ADMIN

    listed = admin.get("/api/notifications/targets").json()
    assert [t["id"] for t in listed["targets"]] == [target["id"]]
    assert {e["id"] for e in listed["events"]} >= {"study_completed", "digest", "disk_low"}
    page = admin.get("/notifications")
    assert page.status_code == 200 and "json://ops:****@" in page.text
    for text in (listed, page.text, admin.get("/api/audit").text):
        assert SECRET not in str(text)

    tested = admin.post(f"/api/notifications/targets/{target['id']}/test", headers={"X-CSRF-Token": csrf})
    assert tested.json() == {"ok": True, "error": None}
    assert receiver.titles() == ["goliat-monitor test notification"]
    assert "/notifications" in receiver.got[0]["message"]
    entry = admin.get("/api/notifications").json()["notifications"][0]
    assert entry["kind"] == "test" and entry["deliveries"][0]["status"] == "DELIVERED"

    audit = admin.get("/api/audit").json()["entries"]
    assert any(e["detail"] == f"POST /api/notifications/targets/{target['id']}/test" for e in audit)
    removed = admin.delete(f"/api/notifications/targets/{target['id']}", headers={"X-CSRF-Token": csrf})
    assert removed.status_code == 200
    assert admin.get("/api/notifications/targets").json()["targets"] == []
    admin.close()


def test_viewers_and_strangers_get_nothing(make_server: Callable[..., LiveServer]) -> None:
    server = private_server(make_server)
    with httpx.Client(base_url=server.url, headers=bearer("admin")) as admin:
        assert add(admin, "json://127.0.0.1:9/x").status_code == 201
    with httpx.Client(base_url=server.url, headers=bearer("viewer")) as viewer:
        assert viewer.get("/api/notifications/targets").status_code == 403
        assert viewer.get("/api/notifications").status_code == 403
        assert add(viewer, "json://127.0.0.1:9/y").status_code == 403
        assert viewer.get("/notifications").status_code == 403
    with httpx.Client(base_url=server.url) as stranger:
        assert stranger.get("/api/notifications/targets").status_code == 401


def test_bad_urls_and_unknown_events_are_refused(server: LiveServer) -> None:
    assert add(server.client, "not a url").status_code == 400
    assert add(server.client, "nosuchservice://x/y").status_code == 400
    refused = add(server.client, "json://127.0.0.1:9/x", ["study_exploded"])
    assert refused.status_code == 400 and "study_exploded" in refused.json()["error"]
    assert server.client.post("/api/notifications/targets/nope/test").status_code == 404
    assert server.client.delete("/api/notifications/targets/nope").status_code == 404


def test_a_failing_test_says_why_and_is_kept_in_the_history(server: LiveServer, receiver: Receiver) -> None:
    receiver.codes = [500]
    target = add(server.client, receiver.url).json()
    answer = server.client.post(f"/api/notifications/targets/{target['id']}/test").json()
    assert answer["ok"] is False and "500" in answer["error"]
    delivery = server.client.get("/api/notifications").json()["notifications"][0]["deliveries"][0]
    assert delivery["status"] == "FAILED" and "500" in delivery["lastError"]


def test_each_target_gets_only_the_events_it_chose(make_server: Callable[..., LiveServer]) -> None:
    everything, failures = Receiver(), Receiver()
    try:
        server = make_server(notify_urls=everything.url, disk_free_alert_mb=0)
        add(server.client, failures.url, ["study_failed"])
        settings_target = server.client.get("/api/notifications/targets").json()["targets"][0]
        assert settings_target["source"] == "settings" and settings_target["url"].startswith(
            "json://127.0.0.1"
        )
        for name, ending in (
            ("good", {}),
            ("bad", {"message": "Study finished with errors", "exit_code": 1}),
        ):
            create_study(server.client, name=name, count=1)
            server.client.get("/api/assignment", params={"machineId": "10.0.0.1"})
            gui(
                server.client,
                {"type": "finished", "message": "Study finished successfully", **ending},
                machine="10.0.0.1",
            )
        wait_for(lambda: len(everything.got) == 3 and failures.got, timeout=10)
        assert sorted(everything.titles()) == [
            "Assignment 0 of 'bad' failed",
            "Super study 'bad' failed",
            "Super study 'good' completed",
        ]
        time.sleep(3 * notify.POLL_S)  # a few more delivery rounds send nothing else
        assert failures.titles() == ["Super study 'bad' failed"]
        notes = cast(list[dict[str, Any]], server.client.get("/api/notifications").json()["notifications"])
        bad = next(n for n in notes if n["kind"] == "study_failed")
        assert sorted(d["targetLabel"][:7] for d in bad["deliveries"]) == ["json://", "ops"]
    finally:
        everything.close()
        failures.close()
