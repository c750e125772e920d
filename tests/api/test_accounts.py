"""Accounts, sessions, roles, API tokens, CSRF, the sign-in limit and the audit log, over real HTTP."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import closing
from typing import Any

import httpx
import pytest

from goliat_monitor.server.app import NoAdminAccount
from tests.accounts import (
    ADMIN,
    ADMIN_PASSWORD,
    VIEWER,
    VIEWER_PASSWORD,
    bearer,
    private_server,
    sign_in,
    with_accounts,
)
from tests.api.helpers import create_study, heartbeat
from tests.conftest import LiveServer

STUDY = {"name": "s", "assignments": [{"splitConfig": {}, "status": "PENDING"}]}


@pytest.fixture
def private(make_server: Callable[..., LiveServer]) -> LiveServer:
    return private_server(make_server)


def test_private_refuses_to_start_without_an_admin_account(make_server: Callable[..., LiveServer]) -> None:
    with pytest.raises(NoAdminAccount, match="goliat-monitor user add NAME --role admin"):
        make_server(private=True)


def test_signing_in_sets_a_safe_cookie_and_answers_who_and_the_csrf_token(private: LiveServer) -> None:
    with httpx.Client(base_url=private.url) as client:
        assert client.get("/api/session").status_code == 401
        response = client.post("/api/session", json={"username": ADMIN, "password": ADMIN_PASSWORD})
        assert response.status_code == 200
        body = response.json()
        assert body["username"] == ADMIN and body["role"] == "admin" and len(body["csrfToken"]) > 20
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
        assert client.get("/api/session").json() == body
        assert client.get("/api/workers").status_code == 200
        assert client.get("/").status_code == 200


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.9"}


def _through_a_proxy(server: LiveServer, local_address: str) -> tuple[str, str, str]:
    """Sign in, then cancel a study, from `local_address` with a proxy's forwarded headers.

    The cookie, the sign-in's audited address, and the actor the study's event history names.
    """
    transport = httpx.HTTPTransport(local_address=local_address)
    with httpx.Client(base_url=server.url, transport=transport, headers=FORWARDED) as client:
        response = client.post("/api/session", json={"username": ADMIN, "password": ADMIN_PASSWORD})
        assert response.status_code == 200, response.text
        with httpx.Client(base_url=server.url, headers=bearer("admin")) as admin:
            study = create_study(admin)
        cancelled = client.post(
            f"/api/super-studies/{study['id']}/cancel", headers={**bearer("admin"), **FORWARDED}
        )
        assert cancelled.status_code == 200, cancelled.text
    entry = next(
        e
        for e in server.client.get("/api/audit", headers=bearer("admin")).json()["entries"]
        if e["action"] == "sign-in"
    )
    return response.headers["set-cookie"].lower(), entry["address"], cancelled.json()["events"][-1]["actor"]


# 127.0.0.1 is the peer uvicorn's own proxy_headers would believe; 127.0.0.2 one it would not.
# Neither may matter: --trust-proxy-headers alone decides.
@pytest.mark.parametrize("peer", ["127.0.0.1", "127.0.0.2"])
def test_the_cookie_is_secure_over_https_behind_a_trusted_proxy(
    make_server: Callable[..., LiveServer], peer: str
) -> None:
    cookie, address, actor = _through_a_proxy(private_server(make_server, trust_proxy_headers=True), peer)
    assert "secure" in cookie
    assert address == "198.51.100.9" and actor == "api (198.51.100.9)"


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.0.0.2"])
def test_an_untrusted_proxy_header_is_ignored(private: LiveServer, peer: str) -> None:
    assert not private.settings.trust_proxy_headers
    cookie, address, actor = _through_a_proxy(private, peer)
    assert "secure" not in cookie
    assert address == peer and actor == f"api ({peer})"


def test_a_wrong_password_and_an_unknown_name_get_the_same_401(private: LiveServer) -> None:
    wrong = private.client.post("/api/session", json={"username": ADMIN, "password": "nope-nope"})
    unknown = private.client.post("/api/session", json={"username": "nobody", "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"error": "Wrong user name or password"}
    assert "set-cookie" not in wrong.headers


def test_a_viewer_reads_everything_and_is_refused_every_change(private: LiveServer) -> None:
    with httpx.Client(base_url=private.url, headers=bearer("admin")) as admin:
        study = create_study(admin)
    client, csrf = sign_in(private, VIEWER, VIEWER_PASSWORD)
    with closing(client):
        assert client.get(f"/api/super-studies/{study['id']}").status_code == 200
        assert client.get(f"/super-studies/{study['id']}").status_code == 200
        headers = {"X-CSRF-Token": csrf}
        refused = client.post("/api/super-studies", json=STUDY, headers=headers)
        assert refused.status_code == 403 and "viewer" in refused.json()["error"]
        assert client.delete(f"/api/super-studies/{study['id']}", headers=headers).status_code == 403
        assert client.post(f"/api/super-studies/{study['id']}/cancel", headers=headers).status_code == 403
        assert client.get("/api/audit").status_code == 403
        assert client.get("/api/sessions").status_code == 403
    assert (
        private.client.get(f"/api/super-studies/{study['id']}", headers=bearer("admin")).json()["status"]
        == "PENDING"
    )


def test_cookie_changes_need_the_csrf_token_and_bearer_changes_do_not(private: LiveServer) -> None:
    client, csrf = sign_in(private, ADMIN, ADMIN_PASSWORD)
    with closing(client):
        assert client.post("/api/super-studies", json=STUDY).status_code == 403
        assert (
            client.post("/api/super-studies", json=STUDY, headers={"X-CSRF-Token": "forged"}).status_code
            == 403
        )
        # Also on a change route that does not declare `require_admin`: the access layer checks it.
        assert client.post("/api/super-studies/split", json={}).status_code == 403
        assert (
            client.post(
                "/api/super-studies", json={**STUDY, "name": "u"}, headers={"X-CSRF-Token": csrf}
            ).status_code
            == 200
        )
    assert (
        private.client.post(
            "/api/super-studies", json={**STUDY, "name": "t"}, headers=bearer("admin")
        ).status_code
        == 200
    )
    assert len(private.client.get("/api/super-studies", headers=bearer("admin")).json()) == 2


def test_bearer_tokens_of_each_role(private: LiveServer) -> None:
    c = private.client
    assert c.post("/api/super-studies", json=STUDY, headers=bearer("viewer")).status_code == 403
    created = c.post("/api/super-studies", json=STUDY, headers=bearer("admin"))
    assert created.status_code == 200
    study_id = created.json()["id"]
    assert c.get("/api/workers", headers=bearer("viewer")).status_code == 200
    assert c.get("/", headers=bearer("viewer")).status_code == 200
    # A worker token makes GOLIAT's calls and the reads `goliat worker` makes, and no other.
    worker = bearer("worker")
    with httpx.Client(base_url=private.url, headers=worker) as machine:
        assert heartbeat(machine).status_code == 200
    assert c.get("/api/super-studies", params={"name": "s"}, headers=worker).status_code == 200
    assignments = c.get(f"/api/super-studies/{study_id}/assignments", headers=worker)
    assert assignments.status_code == 200
    assert c.get(f"/api/assignments/{assignments.json()[0]['id']}", headers=worker).status_code == 200
    assert c.get("/api/workers", headers=worker).status_code == 401
    assert c.get("/api/events", headers=worker).status_code == 401
    assert c.post("/api/super-studies", json=STUDY, headers=worker).status_code == 401
    # A viewer's token is not a worker's.
    assert c.post("/api/heartbeat", json={"machineId": "x"}, headers=bearer("viewer")).status_code == 403
    assert c.get("/api/workers", headers={"Authorization": "Bearer gmt_wrong"}).status_code == 401


def test_environment_tokens_keep_working_on_a_private_server(make_server: Callable[..., LiveServer]) -> None:
    server = private_server(make_server, worker_token="w-secret", admin_token="a-secret")
    c = server.client
    assert c.post("/t/w-secret/api/heartbeat", json={"machineId": "m"}).status_code == 200
    assert (
        c.post("/api/heartbeat", json={"machineId": "m"}, headers={"X-API-Key": "w-secret"}).status_code
        == 200
    )
    assert c.post("/api/heartbeat", json={"machineId": "m"}).status_code == 401
    assert c.get("/t/w-secret/api/workers").status_code == 401  # the worker token opens no dashboard
    assert c.get("/t/a-secret/api/workers").status_code == 200  # the admin token: everything, as before
    assert c.get("/t/a-secret/").status_code == 200
    assert c.post("/t/a-secret/api/super-studies", json=STUDY).status_code == 200


def test_repeated_failures_per_account_answer_429_with_retry_after(
    make_server: Callable[..., LiveServer],
) -> None:
    server = private_server(make_server, login_max_failures=3, login_window_s=60)
    c = server.client
    for _ in range(3):
        assert c.post("/api/session", json={"username": ADMIN, "password": "wrong-one"}).status_code == 401
    limited = c.post("/api/session", json={"username": ADMIN, "password": ADMIN_PASSWORD})
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # Another account from the same address is not locked by these.
    assert c.post("/api/session", json={"username": VIEWER, "password": VIEWER_PASSWORD}).status_code == 200
    server.clock.advance(61)
    assert c.post("/api/session", json={"username": ADMIN, "password": ADMIN_PASSWORD}).status_code == 200


def test_repeated_failures_per_address_answer_429(make_server: Callable[..., LiveServer]) -> None:
    server = private_server(make_server, login_max_failures=100, login_max_failures_per_address=4)
    c = server.client
    for name in ("a", "b", "c", "d"):
        assert c.post("/api/session", json={"username": name, "password": "wrong-one"}).status_code == 401
    limited = c.post("/api/session", json={"username": ADMIN, "password": ADMIN_PASSWORD})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


def test_a_session_expires(make_server: Callable[..., LiveServer]) -> None:
    server = private_server(make_server, session_ttl_s=60)
    client, _ = sign_in(server, VIEWER, VIEWER_PASSWORD)
    with closing(client):
        assert client.get("/api/workers").status_code == 200
        server.clock.advance(61)
        assert client.get("/api/workers").status_code == 401
        assert client.get("/api/session").status_code == 401
        page = client.get("/super-studies")
        assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fsuper-studies"


def test_signing_out_and_signing_out_everywhere(private: LiveServer) -> None:
    first, csrf = sign_in(private, ADMIN, ADMIN_PASSWORD)
    second, _ = sign_in(private, ADMIN, ADMIN_PASSWORD)
    third, csrf3 = sign_in(private, ADMIN, ADMIN_PASSWORD)
    with closing(first), closing(second), closing(third):
        assert first.delete("/api/session").status_code == 403  # no CSRF token: a forged sign-out
        assert first.delete("/api/session", headers={"X-CSRF-Token": csrf}).status_code == 200
        assert first.get("/api/workers").status_code == 401
        assert second.get("/api/workers").status_code == 200
        everywhere = third.delete(
            "/api/session", params={"everywhere": "true"}, headers={"X-CSRF-Token": csrf3}
        )
        assert everywhere.status_code == 200
        assert second.get("/api/workers").status_code == 401
        assert third.get("/api/workers").status_code == 401


def test_an_admin_revokes_another_session(private: LiveServer) -> None:
    viewer, _ = sign_in(private, VIEWER, VIEWER_PASSWORD)
    with closing(viewer):
        sessions = private.client.get("/api/sessions", headers=bearer("admin")).json()
        (mine,) = [s for s in sessions if s["username"] == VIEWER]
        assert (
            private.client.delete(f"/api/sessions/{mine['id']}", headers=bearer("admin")).status_code == 200
        )
        assert viewer.get("/api/workers").status_code == 401


def test_the_audit_log_records_sign_ins_failures_and_admin_actions(private: LiveServer) -> None:
    c = private.client
    c.post("/api/session", json={"username": VIEWER, "password": "wrong-one"})
    admin, csrf = sign_in(private, ADMIN, ADMIN_PASSWORD)
    with closing(admin):
        study_id = admin.post("/api/super-studies", json=STUDY, headers={"X-CSRF-Token": csrf}).json()["id"]
        admin.delete(f"/api/super-studies/{study_id}", headers={"X-CSRF-Token": csrf})
        entries = admin.get("/api/audit").json()["entries"]
        page = admin.get("/audit")
    c.post("/api/super-studies", json=STUDY, headers=bearer("admin"))
    seen = [(e["actor"], e["action"], e["detail"], e["status"]) for e in reversed(entries)]
    assert seen == [
        (VIEWER, "sign-in failed", "", 401),
        (ADMIN, "sign-in", "", 200),
        (ADMIN, "admin action", "POST /api/super-studies", 200),
        (ADMIN, "admin action", f"DELETE /api/super-studies/{study_id}", 200),
    ]
    assert all(e["address"] == "127.0.0.1" and e["at"] for e in entries)
    assert page.status_code == 200 and f"DELETE /api/super-studies/{study_id}" in page.text
    newest = c.get("/api/audit", params={"limit": 1}, headers=bearer("admin")).json()
    assert newest["entries"][0]["actor"] == "token:admin-token" and newest["nextBefore"] is not None
    assert c.get("/api/audit").status_code == 401


def test_a_new_password_ends_the_accounts_sessions(private: LiveServer) -> None:
    from goliat_monitor.credentials import hash_password
    from goliat_monitor.db.queries import accounts

    client, _ = sign_in(private, VIEWER, VIEWER_PASSWORD)
    with closing(client):
        private.context.db.write_sync(
            lambda conn: accounts.set_password(conn, VIEWER, hash_password("another-one"), private.clock.now)
        )
        assert client.get("/api/workers").status_code == 401


def test_sessions_and_tokens_work_on_an_open_server_too(make_server: Callable[..., LiveServer]) -> None:
    """Not private, admin token set: reads stay open, changes take an admin account or token."""
    server = make_server(prepare=with_accounts, admin_token="a-secret")
    c = server.client
    assert c.get("/api/workers").status_code == 200
    assert c.post("/api/super-studies", json=STUDY).status_code == 401
    assert c.post("/api/super-studies", json=STUDY, headers=bearer("viewer")).status_code == 403
    assert c.post("/api/super-studies", json=STUDY, headers=bearer("admin")).status_code == 200
    client, csrf = sign_in(server, ADMIN, ADMIN_PASSWORD)
    with closing(client):
        assert client.post("/api/super-studies", json=STUDY).status_code == 403
        assert (
            client.post(
                "/api/super-studies", json={**STUDY, "name": "u"}, headers={"X-CSRF-Token": csrf}
            ).status_code
            == 200
        )


def test_housekeeping_forgets_ended_sessions_and_old_failures(make_server: Callable[..., LiveServer]) -> None:
    from goliat_monitor.server import services

    server = private_server(make_server, session_ttl_s=60, login_window_s=60)
    server.client.post("/api/session", json={"username": VIEWER, "password": "wrong-one"})
    client, _ = sign_in(server, VIEWER, VIEWER_PASSWORD)
    client.close()
    assert server.run(services.forget_sign_ins(server.context)) == 0
    server.clock.advance(61)
    # The session and the address's failure (signing in cleared the account's).
    assert server.run(services.forget_sign_ins(server.context)) == 2


def test_a_form_carries_the_csrf_token_as_a_hidden_field(private: LiveServer) -> None:
    with httpx.Client(base_url=private.url, headers=bearer("admin")) as admin:
        study = create_study(admin)
    client, csrf = sign_in(private, ADMIN, ADMIN_PASSWORD)
    with closing(client):
        cancel = f"/api/super-studies/{study['id']}/cancel"
        assert client.post(cancel, data={"csrf_token": "forged"}).status_code == 403
        assert client.post(cancel, data={"csrf_token": csrf}).status_code == 200
        assert client.post("/logout", data={}).status_code == 403  # the sign-out form without it
        assert client.get("/api/session").status_code == 200
        signed_out = client.post("/logout", data={"csrf_token": csrf})
        assert signed_out.status_code == 303 and signed_out.headers["location"] == "/login"
        assert client.get("/api/session").status_code == 401


def _admin_routes(server: LiveServer) -> list[tuple[str, str]]:
    """Every (method, path) whose route depends on `require_admin`, path parameters filled in."""
    from fastapi.dependencies.models import Dependant
    from fastapi.routing import APIRoute

    from goliat_monitor.server.auth import require_admin

    def needs_admin(dependant: Dependant) -> bool:
        return any(d.call is require_admin or needs_admin(d) for d in dependant.dependencies)

    found: list[tuple[str, str]] = []
    for route in server.app.routes:
        if isinstance(route, APIRoute) and needs_admin(route.dependant):
            path = re.sub(r"\{[^}]+\}", "no-such-id", route.path)
            found.extend((method, path) for method in sorted(route.methods or ()))
    return found


def test_every_admin_route_refuses_a_viewer_and_changes_nothing(private: LiveServer) -> None:
    """Found from the routes themselves, so a change route added later is covered too."""
    routes = _admin_routes(private)
    paths = {path for _, path in routes}
    assert {  # the ones this test was written against: the discovery must keep finding them
        "/api/super-studies",
        "/api/super-studies/no-such-id",
        "/api/super-studies/no-such-id/cancel",
        "/api/assignments/no-such-id/retry",
        "/api/assignments/no-such-id/requeue",
        "/api/workers/no-such-id",
        "/api/notifications/targets",
    } <= paths, sorted(paths)
    admin = bearer("admin")
    with httpx.Client(base_url=private.url, headers=admin) as as_admin:
        study = create_study(as_admin)

    def state() -> list[Any]:
        reads = ("/api/super-studies", f"/api/super-studies/{study['id']}/assignments", "/api/workers")
        return [private.client.get(url, headers=admin).json() for url in reads]

    before = state()
    for method, path in routes:
        path = path.replace("/super-studies/no-such-id", f"/super-studies/{study['id']}")
        response = private.client.request(method, path, headers=bearer("viewer"), json={})
        assert response.status_code == 403, (method, path, response.status_code, response.text[:200])
    assert state() == before
