"""`goliat-monitor user ...` and `token ...` as real subprocesses, against the database a server uses."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from goliat_monitor.db import tables
from goliat_monitor.settings import ServerSettings
from tests.conftest import LiveServer
from tests.support import free_port, wait_for


def where(settings: ServerSettings) -> list[str]:
    if settings.database_url:
        return ["--database-url", settings.database_url]
    return ["--data-dir", str(settings.data_dir)]


def cli(settings: ServerSettings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "goliat_monitor", *args, *where(settings)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_users_and_tokens_from_the_command_line(make_server: Callable[..., LiveServer]) -> None:
    made: dict[str, str] = {}

    def prepare(settings: ServerSettings) -> None:
        added = cli(
            settings, "user", "add", "alice", "--role", "admin", "--password-stdin", stdin="alice-pass-1\n"
        )
        assert added.returncode == 0, added.stderr
        again = cli(
            settings, "user", "add", "alice", "--role", "viewer", "--password-stdin", stdin="x-pass-123\n"
        )
        assert again.returncode == 1 and "already exists" in again.stderr
        short = cli(settings, "user", "add", "bob", "--role", "viewer", "--password-stdin", stdin="short\n")
        assert short.returncode == 1 and "8 characters" in short.stderr
        assert (
            cli(
                settings, "user", "add", "bob", "--role", "viewer", "--password-stdin", stdin="bob-pass-1\n"
            ).returncode
            == 0
        )
        listed = cli(settings, "user", "list").stdout.splitlines()
        assert [line.split("\t")[:2] for line in listed] == [["alice", "admin"], ["bob", "viewer"]]
        created = cli(settings, "token", "create", "--name", "ci", "--role", "viewer")
        assert created.returncode == 0, created.stderr
        made["token"] = created.stdout.splitlines()[-1]
        assert made["token"].startswith("gmt_") and " " not in made["token"]
        assert [line.split("\t")[:2] for line in cli(settings, "token", "list").stdout.splitlines()] == [
            ["ci", "viewer"]
        ]
        assert made["token"] not in cli(settings, "token", "list").stdout

    server = make_server(prepare=prepare, private=True)
    settings = server.settings
    c = server.client
    token = {"Authorization": f"Bearer {made['token']}"}
    # Secrets are stored hashed: argon2id for passwords, SHA-256 for tokens, never as given.
    users, tokens = server.context.db.read_sync(
        lambda conn: (
            dict(conn.execute(select(tables.users.c.username, tables.users.c.password_hash)).all()),
            list(conn.execute(select(tables.api_tokens.c.token_hash)).scalars()),
        )
    )
    assert all(h.startswith("$argon2id$") and "pass" not in h for h in users.values()), users
    assert tokens == [hashlib.sha256(made["token"].encode()).hexdigest()]
    assert c.get("/api/workers", headers=token).status_code == 200
    assert c.post("/api/session", json={"username": "alice", "password": "alice-pass-1"}).status_code == 200

    changed = cli(settings, "user", "passwd", "alice", "--password-stdin", stdin="alice-pass-2\n")
    assert changed.returncode == 0, changed.stderr
    assert c.get("/api/session").status_code == 401  # a new password ends the account's sessions
    assert c.post("/api/session", json={"username": "alice", "password": "alice-pass-1"}).status_code == 401
    assert c.post("/api/session", json={"username": "alice", "password": "alice-pass-2"}).status_code == 200

    assert cli(settings, "token", "revoke", "ci").returncode == 0
    assert cli(settings, "token", "revoke", "ci").returncode == 1
    wait_for(lambda: c.get("/api/workers", headers=token).status_code == 401, 15, "the revoked token refused")

    assert cli(settings, "user", "remove", "bob").returncode == 0
    assert cli(settings, "user", "remove", "bob").returncode == 1
    actions = [e["action"] for e in c.get("/api/audit").json()["entries"] if e["actor"] == "cli"]
    assert actions == [
        "user removed",
        "token revoked",
        "password changed",
        "token created",
        "user added",
        "user added",
    ]


@pytest.mark.parametrize("how", ["option", "environment"])
def test_serve_private_without_an_admin_refuses_to_start_and_says_how_to_add_one(
    tmp_path: Path, how: str
) -> None:
    data = tmp_path / "data"
    private = ["--private"] if how == "option" else []
    env = {**os.environ, "GOLIAT_MONITOR_PRIVATE": "true"} if how == "environment" else None
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "goliat_monitor",
            "serve",
            *private,
            "--data-dir",
            str(data),
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 1, done.stderr
    assert f"goliat-monitor user add NAME --role admin --data-dir {data}" in done.stderr
    # A viewer alone is not enough either.
    settings = ServerSettings(data_dir=data)
    assert (
        cli(
            settings, "user", "add", "v", "--role", "viewer", "--password-stdin", stdin="v-pass-123\n"
        ).returncode
        == 0
    )
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "goliat_monitor",
            "serve",
            "--private",
            "--data-dir",
            str(data),
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1 and "admin account" in again.stderr


def test_serve_leaves_forwarded_headers_to_the_trust_proxy_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn's own proxy_headers would believe X-Forwarded-* from 127.0.0.1 whatever the setting."""
    import gc

    import uvicorn

    from goliat_monitor.cli import main

    ran: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: ran.update(kwargs))
    monkeypatch.setattr(gc, "freeze", lambda: None)
    result = CliRunner().invoke(main, ["serve", "--data-dir", str(tmp_path / "data"), "--port", "0"])
    assert result.exit_code == 0, result.output
    assert ran["proxy_headers"] is False
