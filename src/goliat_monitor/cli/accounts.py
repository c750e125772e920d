"""`user` and `token`: the accounts that sign in to a `--private` dashboard, and API tokens.

They open the server's database the way `serve` does (`--data-dir`, `--database-url`, or the same
environment variables), create or upgrade its schema first, and write each change to the audit
log with the actor `cli`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from goliat_monitor.cli.server import _server_settings

T = TypeVar("T")

_ROLES = ("admin", "viewer")
_TOKEN_ROLES = ("viewer", "admin", "worker")


def _database_options(function: Any) -> Any:
    function = click.option(
        "--database-url", default=None, help="Database URL (else DATABASE_URL, else SQLite in --data-dir)."
    )(function)
    return click.option(
        "--data-dir", default=None, help="The server's data dir [env: GOLIAT_MONITOR_DATA_DIR]."
    )(function)


@contextlib.contextmanager
def _database(data_dir: str | None, database_url: str | None) -> Iterator[Any]:
    from goliat_monitor.db import migrate
    from goliat_monitor.db.connections import make_engine

    settings = _server_settings({"data_dir": data_dir, "database_url": database_url})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    try:
        migrate.upgrade(engine)
        yield engine
    finally:
        engine.dispose()


def _write(engine: Any, fn: Callable[[Any], T]) -> T:
    with engine.begin() as conn:
        return fn(conn)


def _audit(conn: Any, action: str, detail: str) -> None:
    from goliat_monitor.db.queries import accounts

    accounts.audit(conn, at=time.time(), actor="cli", action=action, detail=detail)


def _read_password(password_stdin: bool, prompt: str = "Password") -> str:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(prompt, hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.ClickException("a password needs at least 8 characters")
    return str(password)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- user ---


@click.group()
def user() -> None:
    """Accounts that sign in to the dashboard (admins change things, viewers look)."""


@user.command("add")
@click.argument("name")
@click.option(
    "--role", type=click.Choice(_ROLES), required=True, help="admin: everything; viewer: read only."
)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@_database_options
def user_add(
    name: str, role: str, password_stdin: bool, data_dir: str | None, database_url: str | None
) -> None:
    """Add an account NAME; asks for its password (twice) unless --password-stdin."""
    from goliat_monitor.credentials import hash_password
    from goliat_monitor.db.queries import accounts
    from goliat_monitor.errors import Conflict

    if not name or len(name) > 64 or any(c.isspace() for c in name):
        raise click.BadParameter("1 to 64 characters, no spaces", param_hint="NAME")
    password_hash = hash_password(_read_password(password_stdin))
    with _database(data_dir, database_url) as engine:

        def add(conn: Any) -> None:
            accounts.add_user(conn, name, password_hash, role, time.time())
            _audit(conn, "user added", f"{name} ({role})")

        try:
            _write(engine, add)
        except Conflict as exc:
            raise click.ClickException(exc.message) from None
    click.echo(f"added {role} {name}")


@user.command("list")
@_database_options
def user_list(data_dir: str | None, database_url: str | None) -> None:
    """Every account, its role and when it was created."""
    from goliat_monitor.db.queries import accounts

    with _database(data_dir, database_url) as engine, engine.connect() as conn:
        rows = accounts.list_users(conn)
    for row in rows:
        click.echo(f"{row['username']}\t{row['role']}\t{_when(row['created_at'])}")


@user.command("remove")
@click.argument("name")
@_database_options
def user_remove(name: str, data_dir: str | None, database_url: str | None) -> None:
    """Remove the account NAME; its sessions end at once."""
    from goliat_monitor.db.queries import accounts

    with _database(data_dir, database_url) as engine:

        def remove(conn: Any) -> bool:
            removed = accounts.remove_user(conn, name)
            if removed:
                _audit(conn, "user removed", name)
            return removed

        if not _write(engine, remove):
            raise click.ClickException(f"no user named {name!r}")
    click.echo(f"removed {name}")


@user.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from the first line of stdin.")
@_database_options
def user_passwd(name: str, password_stdin: bool, data_dir: str | None, database_url: str | None) -> None:
    """Set a new password for NAME; every session of the account ends (signed out everywhere)."""
    from goliat_monitor.credentials import hash_password
    from goliat_monitor.db.queries import accounts

    password_hash = hash_password(_read_password(password_stdin, "New password"))
    with _database(data_dir, database_url) as engine:

        def change(conn: Any) -> bool:
            changed = accounts.set_password(conn, name, password_hash, time.time())
            if changed:
                _audit(conn, "password changed", name)
            return changed

        if not _write(engine, change):
            raise click.ClickException(f"no user named {name!r}")
    click.echo(f"new password set for {name}; its sessions have ended")


# --- token ---


@click.group()
def token() -> None:
    """API tokens for scripts and machines (`Authorization: Bearer <token>` or `/t/<token>/`)."""


@token.command("create")
@click.option("--name", required=True, help="What the token is for (unique), shown in the audit log.")
@click.option(
    "--role",
    type=click.Choice(_TOKEN_ROLES),
    required=True,
    help="viewer: read; admin: everything; worker: GOLIAT's calls and the reads `goliat worker` makes.",
)
@_database_options
def token_create(name: str, role: str, data_dir: str | None, database_url: str | None) -> None:
    """Make a token and print it: it is shown only now (only its SHA-256 is stored).

    The last line of the output is the token alone, for scripts: `| tail -n 1`.
    """
    from goliat_monitor.credentials import digest, new_api_token
    from goliat_monitor.db.queries import accounts
    from goliat_monitor.errors import Conflict

    if not name or len(name) > 64:
        raise click.BadParameter("1 to 64 characters", param_hint="--name")
    secret = new_api_token()
    with _database(data_dir, database_url) as engine:

        def add(conn: Any) -> None:
            accounts.add_token(conn, name, role, digest(secret), time.time())
            _audit(conn, "token created", f"{name} ({role})")

        try:
            _write(engine, add)
        except Conflict as exc:
            raise click.ClickException(exc.message) from None
    click.echo(f"created {role} token {name!r}; store it now, it cannot be shown again:")
    click.echo(secret)


@token.command("list")
@_database_options
def token_list(data_dir: str | None, database_url: str | None) -> None:
    """Every token's name, role and creation time (never the token)."""
    from goliat_monitor.db.queries import accounts

    with _database(data_dir, database_url) as engine, engine.connect() as conn:
        rows = accounts.list_tokens(conn)
    for row in rows:
        click.echo(f"{row['name']}\t{row['role']}\t{_when(row['created_at'])}")


@token.command("revoke")
@click.argument("name")
@_database_options
def token_revoke(name: str, data_dir: str | None, database_url: str | None) -> None:
    """Delete the token NAME; running servers stop accepting it within 5 seconds."""
    from goliat_monitor.db.queries import accounts

    with _database(data_dir, database_url) as engine:

        def revoke(conn: Any) -> bool:
            revoked = accounts.revoke_token(conn, name)
            if revoked:
                _audit(conn, "token revoked", name)
            return revoked

        if not _write(engine, revoke):
            raise click.ClickException(f"no token named {name!r}")
    click.echo(f"revoked {name}")
