"""Accounts and tokens for tests: written straight into the server's database before it starts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from goliat_monitor.credentials import digest, hash_password
from goliat_monitor.db import migrate
from goliat_monitor.db.connections import make_engine
from goliat_monitor.db.queries import accounts
from goliat_monitor.settings import ServerSettings
from tests.conftest import LiveServer

ADMIN, ADMIN_PASSWORD = "ada", "ada-password-1"
VIEWER, VIEWER_PASSWORD = "vic", "vic-password-1"


def write(settings: ServerSettings, fn: Callable[[Any], Any]) -> Any:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    try:
        migrate.upgrade(engine)
        with engine.begin() as conn:
            return fn(conn)
    finally:
        engine.dispose()


def add_user(settings: ServerSettings, name: str, role: str, password: str) -> None:
    write(settings, lambda conn: accounts.add_user(conn, name, hash_password(password), role, time.time()))


def add_token(settings: ServerSettings, name: str, role: str, token: str) -> None:
    write(settings, lambda conn: accounts.add_token(conn, name, role, digest(token), time.time()))


def with_accounts(settings: ServerSettings) -> None:
    """An admin and a viewer, plus one API token of each role (named and valued after the role)."""
    add_user(settings, ADMIN, "admin", ADMIN_PASSWORD)
    add_user(settings, VIEWER, "viewer", VIEWER_PASSWORD)
    for role in ("admin", "viewer", "worker"):
        add_token(settings, f"{role}-token", role, f"gmt_{role}-secret")


def private_server(make_server: Callable[..., LiveServer], **overrides: Any) -> LiveServer:
    return make_server(prepare=with_accounts, private=True, **overrides)


def sign_in(server: LiveServer, name: str, password: str) -> tuple[httpx.Client, str]:
    """A client of its own holding the session cookie, and the session's CSRF token."""
    client = httpx.Client(base_url=server.url, timeout=30)
    response = client.post("/api/session", json={"username": name, "password": password})
    assert response.status_code == 200, response.text
    return client, str(response.json()["csrfToken"])


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer gmt_{role}-secret"}
