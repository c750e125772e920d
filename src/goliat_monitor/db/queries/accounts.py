"""Accounts, sessions, API tokens, failed sign-ins and the audit log: SQL in, plain rows out.

Writes flush without committing; the caller's transaction (`Database.write`, or the CLI's own)
commits them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, RowMapping, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from goliat_monitor.db.queries.common import new_id
from goliat_monitor.db.tables import api_tokens, audit_log, auth_failures, sessions, users
from goliat_monitor.errors import Conflict

# -- users -------------------------------------------------------------------------------------


def add_user(conn: Connection, username: str, password_hash: str, role: str, now: float) -> str:
    user_id = new_id()
    try:
        with conn.begin_nested():
            conn.execute(
                insert(users).values(
                    id=user_id,
                    username=username,
                    password_hash=password_hash,
                    role=role,
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        raise Conflict(f"a user named {username!r} already exists") from None
    return user_id


def user_by_name(conn: Connection, username: str) -> RowMapping | None:
    return conn.execute(select(users).where(users.c.username == username)).mappings().first()


def list_users(conn: Connection) -> list[RowMapping]:
    return list(conn.execute(select(users).order_by(users.c.username)).mappings())


def remove_user(conn: Connection, username: str) -> bool:
    """Remove the account; its sessions go with it (ON DELETE CASCADE, and explicitly for SQLite)."""
    row = user_by_name(conn, username)
    if row is None:
        return False
    conn.execute(delete(sessions).where(sessions.c.user_id == row["id"]))
    conn.execute(delete(users).where(users.c.id == row["id"]))
    return True


def set_password(conn: Connection, username: str, password_hash: str, now: float) -> bool:
    """A new password signs the account out everywhere: whoever knew the old one loses access."""
    row = user_by_name(conn, username)
    if row is None:
        return False
    conn.execute(
        update(users).where(users.c.id == row["id"]).values(password_hash=password_hash, updated_at=now)
    )
    revoke_user_sessions(conn, row["id"], now)
    return True


def count_admins(conn: Connection) -> int:
    return int(
        conn.execute(select(func.count()).select_from(users).where(users.c.role == "admin")).scalar_one()
    )


# -- sessions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionRow:
    id: str
    user_id: str
    username: str
    role: str
    csrf_token: str
    expires_at: float


def create_session(
    conn: Connection,
    *,
    user_id: str,
    secret_hash: str,
    csrf_token: str,
    now: float,
    expires_at: float,
    address: str,
) -> str:
    session_id = new_id()
    conn.execute(
        insert(sessions).values(
            id=session_id,
            secret_hash=secret_hash,
            user_id=user_id,
            csrf_token=csrf_token,
            created_at=now,
            expires_at=expires_at,
            address=address[:64],
        )
    )
    return session_id


def live_session(conn: Connection, secret_hash: str, now: float) -> SessionRow | None:
    """The session this cookie names, if it is neither expired nor revoked (one indexed lookup)."""
    row = (
        conn.execute(
            select(
                sessions.c.id,
                sessions.c.user_id,
                sessions.c.csrf_token,
                sessions.c.expires_at,
                users.c.username,
                users.c.role,
            )
            .join(users, users.c.id == sessions.c.user_id)
            .where(
                sessions.c.secret_hash == secret_hash,
                sessions.c.revoked_at.is_(None),
                sessions.c.expires_at > now,
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    return SessionRow(
        id=row["id"],
        user_id=row["user_id"],
        username=row["username"],
        role=row["role"],
        csrf_token=row["csrf_token"],
        expires_at=row["expires_at"],
    )


def revoke_session(conn: Connection, session_id: str, now: float) -> bool:
    result = conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount > 0


def revoke_user_sessions(conn: Connection, user_id: str, now: float) -> int:
    """Sign a user out everywhere: every live session of theirs, on every replica, at once."""
    result = conn.execute(
        update(sessions)
        .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount)


def list_live_sessions(conn: Connection, now: float) -> list[RowMapping]:
    query = (
        select(
            sessions.c.id,
            users.c.username,
            users.c.role,
            sessions.c.created_at,
            sessions.c.expires_at,
            sessions.c.address,
        )
        .join(users, users.c.id == sessions.c.user_id)
        .where(sessions.c.revoked_at.is_(None), sessions.c.expires_at > now)
        .order_by(sessions.c.created_at.desc())
    )
    return list(conn.execute(query).mappings())


def purge_sessions(conn: Connection, now: float) -> int:
    """Drop sessions that can no longer sign anyone in."""
    result = conn.execute(
        delete(sessions).where((sessions.c.expires_at <= now) | sessions.c.revoked_at.isnot(None))
    )
    return int(result.rowcount)


# -- API tokens --------------------------------------------------------------------------------


def add_token(conn: Connection, name: str, role: str, token_hash: str, now: float) -> str:
    token_id = new_id()
    try:
        with conn.begin_nested():
            conn.execute(
                insert(api_tokens).values(
                    id=token_id, name=name, role=role, token_hash=token_hash, created_at=now
                )
            )
    except IntegrityError:
        raise Conflict(f"a token named {name!r} already exists") from None
    return token_id


def token_role(conn: Connection, token_hash: str) -> tuple[str, str] | None:
    """(name, role) of the token with this hash, or None."""
    row = conn.execute(
        select(api_tokens.c.name, api_tokens.c.role).where(api_tokens.c.token_hash == token_hash)
    ).first()
    return (row.name, row.role) if row else None


def list_tokens(conn: Connection) -> list[RowMapping]:
    query = select(api_tokens.c.name, api_tokens.c.role, api_tokens.c.created_at).order_by(api_tokens.c.name)
    return list(conn.execute(query).mappings())


def revoke_token(conn: Connection, name: str) -> bool:
    return conn.execute(delete(api_tokens).where(api_tokens.c.name == name)).rowcount > 0


# -- failed sign-ins ---------------------------------------------------------------------------


def recent_failures(conn: Connection, key: str, *, since: float, limit: int) -> list[float]:
    """Times of the newest `limit` failures of `key` after `since`: one index range scan."""
    query = (
        select(auth_failures.c.at)
        .where(auth_failures.c.key == key, auth_failures.c.at > since)
        .order_by(auth_failures.c.at.desc())
        .limit(limit)
    )
    return [float(at) for at in conn.execute(query).scalars()]


def record_failure(conn: Connection, keys: Iterable[str], now: float, *, forget_before: float) -> None:
    """Count one failure against each key, and drop that key's failures too old to matter."""
    keys = list(keys)
    conn.execute(
        delete(auth_failures).where(auth_failures.c.key.in_(keys), auth_failures.c.at <= forget_before)
    )
    conn.execute(insert(auth_failures), [{"key": key, "at": now} for key in keys])


def purge_failures(conn: Connection, before: float) -> int:
    return int(conn.execute(delete(auth_failures).where(auth_failures.c.at <= before)).rowcount)


def clear_failures(conn: Connection, key: str) -> None:
    conn.execute(delete(auth_failures).where(auth_failures.c.key == key))


# -- audit log ---------------------------------------------------------------------------------


def audit(
    conn: Connection,
    *,
    at: float,
    actor: str,
    action: str,
    detail: str = "",
    address: str = "",
    status: int | None = None,
) -> None:
    conn.execute(
        insert(audit_log).values(
            at=at,
            actor=actor[:128],
            action=action[:64],
            detail=detail[:2000],
            address=address[:64],
            status=status,
        )
    )


def audit_page(conn: Connection, *, limit: int, before: int | None = None) -> list[RowMapping]:
    """Newest first; `before` is the id of the oldest entry already shown."""
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(audit_log.c.id < before)
    return list(conn.execute(query).mappings())
